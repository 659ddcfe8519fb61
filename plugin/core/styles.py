"""Styles: named bundles of model choice, LoRAs, prompt template, negative prompt and sampler settings.

A style is one JSON file. The built-ins ship in ``builtin_styles/`` next to this module; the painter's own
live in ``<config dir>/styles`` (``user_styles_dir``), and a user file whose name matches a built-in replaces
it. Krita, GIMP and the CLI share this module: ``load_styles`` reads both folders (a bad file is reported
and skipped, the others still load), ``apply_style`` turns a style plus what the painter chose into the
settings of a job, and ``save_style`` is what Krita's style editor writes with.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latentbrush.protocol import JobRequest, LoraRef, ServerHello, field_range

from .requests import GenerationSettings
from .token import config_dir

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_styles"
USER_FOLDER = "styles"
BUILTIN, USER = "builtin", "user"
PROMPT_SLOT = "{prompt}"  # where the painter's prompt goes in a template
DEFAULT_STYLE = "Default"
MAX_NAME = 64
MAX_TEXT = 4000  # a template or negative prompt longer than this is a mistake, not a style
# the fields a caller may pin (``apply_style(keep=...)``): what the painter set explicitly wins over the style
PINNABLE = frozenset({"model", "sampler", "steps", "cfg"})


class StyleError(ValueError):
    """A style file or value that cannot be used; the message names the file and the field."""

    def __init__(self, message: str, field_name: str = "", path: str = "") -> None:
        where = f"{path}: " if path else ""
        what = f"{field_name}: " if field_name else ""
        super().__init__(f"{where}{what}{message}")
        self.detail, self.field, self.path = message, field_name, path


@dataclass(frozen=True)
class LiveStyle:
    """Sampler settings for live painting (few steps); an empty field keeps the live panel's value."""

    sampler: str = ""
    steps: int | None = None
    cfg: float | None = None


@dataclass(frozen=True)
class Style:
    """One style. Empty ``sampler`` / None ``steps`` and ``cfg`` leave the painter's values alone."""

    name: str
    models: tuple[str, ...] = ()  # the first one the server has is used; () = the painter's choice
    loras: tuple[LoraRef, ...] = ()
    prompt: str = PROMPT_SLOT  # template: ``{prompt}`` is the painter's prompt; none = appended after a comma
    negative_prompt: str = ""
    sampler: str = ""
    steps: int | None = None
    cfg: float | None = None
    live: LiveStyle = LiveStyle()
    description: str = ""
    source: str = field(default=USER, compare=False)  # BUILTIN or USER; not part of the file
    path: str = field(default="", compare=False)  # the file it came from, "" for a new one


def user_styles_dir() -> Path:
    """The painter's style folder: ``styles`` in latentbrush's per-user config folder (where the token is)."""
    return config_dir() / USER_FOLDER


# ----------------------------------------------------------------------------- reading


def _text(data: Mapping[str, Any], key: str, where: str, default: str = "", limit: int = MAX_TEXT) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise StyleError(f"must be a string, not {type(value).__name__}", where + key)
    if len(value) > limit:
        raise StyleError(f"is longer than {limit} characters", where + key)
    return value


def _number(data: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    """An int (``kind`` int) or number in ``JobRequest``'s range for ``key``, or None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise StyleError(f"must be {'an integer' if kind is int else 'a number'}, not {json.dumps(value)}",
                         where + key)
    low, high = field_range(JobRequest, key)
    if not (math.isfinite(value) and low <= value <= high):
        raise StyleError(f"{value} is outside {low}..{high}", where + key)
    return kind(value)


def _check_keys(data: object, allowed: Collection[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise StyleError(f"must be a JSON object, not {type(data).__name__}", where.rstrip("."))
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise StyleError(f"unknown field (known: {', '.join(sorted(allowed))})", where + unknown[0])
    return data


def _loras(value: object) -> tuple[LoraRef, ...]:
    if not isinstance(value, list):
        raise StyleError("must be a list of {\"name\": ..., \"weight\": ...}", "loras")
    low, high = field_range(LoraRef, "weight")
    out = []
    for index, item in enumerate(value):
        where = f"loras[{index}]."
        entry = _check_keys(item, ("name", "weight"), where)
        name = _text(entry, "name", where, limit=256)
        if not name:
            raise StyleError("is missing or empty", where + "name")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not low <= weight <= high:
            raise StyleError(f"must be a number in {low}..{high}, not {json.dumps(weight)}", where + "weight")
        out.append(LoraRef(name, float(weight)))
    return tuple(out)


def _models(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise StyleError("must be a list of model names", "models")
    return tuple(value)


STYLE_FIELDS = ("name", "description", "models", "loras", "prompt", "negative_prompt", "sampler", "steps", "cfg",
                "live")
LIVE_FIELDS = ("sampler", "steps", "cfg")


def style_from_dict(data: object, *, source: str = USER, path: str = "") -> Style:
    """A ``Style`` from a parsed JSON object; StyleError names the file (``path``) and the field."""
    try:
        return _parse_style(data, source, path)
    except StyleError as exc:
        if not path:
            raise
        raise StyleError(exc.detail, exc.field, path) from None


def _parse_style(data: object, source: str, path: str) -> Style:
    d = _check_keys(data, STYLE_FIELDS, "")
    name = _text(d, "name", "", limit=MAX_NAME).strip()
    if not name:
        raise StyleError("is missing or empty", "name")
    live = _check_keys(d.get("live", {}), LIVE_FIELDS, "live.")
    return Style(
        name=name,
        description=_text(d, "description", ""),
        models=_models(d.get("models", [])),
        loras=_loras(d.get("loras", [])),
        prompt=_text(d, "prompt", "", default=PROMPT_SLOT),
        negative_prompt=_text(d, "negative_prompt", ""),
        sampler=_text(d, "sampler", "", limit=64),
        steps=_number(d, "steps", "", int),
        cfg=_number(d, "cfg", "", float),
        live=LiveStyle(_text(live, "sampler", "live.", limit=64), _number(live, "steps", "live.", int),
                       _number(live, "cfg", "live.", float)),
        source=source,
        path=path,
    )


def style_to_dict(style: Style) -> dict[str, Any]:
    """The JSON object of a style (what ``save_style`` writes): empty optional fields are left out."""
    out: dict[str, Any] = {"name": style.name}
    if style.description:
        out["description"] = style.description
    if style.models:
        out["models"] = list(style.models)
    if style.loras:
        out["loras"] = [{"name": lora.name, "weight": lora.weight} for lora in style.loras]
    out["prompt"] = style.prompt
    if style.negative_prompt:
        out["negative_prompt"] = style.negative_prompt
    for key in ("sampler", "steps", "cfg"):
        if getattr(style, key) not in ("", None):
            out[key] = getattr(style, key)
    live = {key: getattr(style.live, key) for key in LIVE_FIELDS if getattr(style.live, key) not in ("", None)}
    if live:
        out["live"] = live
    return out


def read_style(path: Path, source: str = USER) -> Style:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StyleError(f"cannot be read: {exc}", "", str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StyleError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "", str(path))
    return style_from_dict(data, source=source, path=str(path))


def _read_folder(folder: Path | None, source: str, problems: list[str]) -> list[Style]:
    """The styles of one folder, by file name; a missing folder has none, a bad file is a problem."""
    if folder is None or not folder.is_dir():
        return []
    styles: list[Style] = []
    for path in sorted(folder.glob("*.json")):
        try:
            style = read_style(path, source)
        except StyleError as exc:
            problems.append(str(exc))
            continue
        twin = find_style(styles, style.name)
        if twin is not None:
            problems.append(f"{path}: name: {style.name!r} is also the name of {twin.path}; this file is skipped")
            continue
        styles.append(style)
    return styles


def load_styles(builtin_dir: Path | None = BUILTIN_DIR,
                user_dir: Path | None = None) -> tuple[tuple[Style, ...], tuple[str, ...]]:
    """(styles, problems): the built-ins in file order, a user style of the same name (case-insensitive) in
    its place, then the other user styles by file name. ``problems`` says what was skipped and why."""
    problems: list[str] = []
    styles = _read_folder(builtin_dir, BUILTIN, problems)
    for style in _read_folder(user_dir, USER, problems):
        index = next((i for i, s in enumerate(styles) if s.name.casefold() == style.name.casefold()), None)
        if index is None:
            styles.append(style)
        else:
            styles[index] = style
    return tuple(styles), tuple(problems)


def find_style(styles: Iterable[Style], name: str) -> Style | None:
    wanted = name.strip().casefold()
    return next((s for s in styles if s.name.casefold() == wanted), None)


# ----------------------------------------------------------------------------- writing


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.").lower()
    return stem or "style"


def save_style(style: Style, user_dir: Path) -> Style:
    """Write ``style`` into ``user_dir`` (made if missing) and return it as saved (source user, its path).

    It replaces the user file that holds the same name, else goes to a new ``<name>.json``; a built-in of
    that name is then overridden, never written. The file is written whole, then renamed over the old one.
    """
    data = style_to_dict(style)
    style_from_dict(data)  # what the editor made must load again: the same checks as a file
    user_dir.mkdir(parents=True, exist_ok=True)
    mine, _ = load_styles(None, user_dir)
    existing = find_style(mine, style.name)
    if existing is not None:
        path = Path(existing.path)
    else:
        path = user_dir / f"{_file_stem(style.name)}.json"
        for number in range(2, 1000):
            if not path.exists():
                break
            path = user_dir / f"{_file_stem(style.name)}-{number}.json"
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return replace(style, source=USER, path=str(path))


# ----------------------------------------------------------------------------- using


def fill_template(template: str, prompt: str) -> str:
    """The painter's ``prompt`` in the template's ``{prompt}`` (every one), or the template after it and a comma;
    the commas and spaces an empty prompt leaves at either end are dropped."""
    prompt = prompt.strip()
    if PROMPT_SLOT in template:
        text = template.replace(PROMPT_SLOT, prompt)
    else:
        text = ", ".join(part for part in (prompt, template.strip()) if part)
    return text.strip(" ,")


def _server_name(names: Iterable[str], wanted: str) -> str | None:
    """The server's spelling of ``wanted`` (exact first, then ignoring case), or None when it has none."""
    names = list(names)
    if wanted in names:
        return wanted
    return next((n for n in names if n.casefold() == wanted.casefold()), None)


def _pick_model(style: Style, settings: GenerationSettings, hello: ServerHello | None) -> tuple[str, list[str]]:
    if hello is None:
        return settings.model, [f"style {style.name}: not connected, so its models ({', '.join(style.models)}) "
                                "cannot be checked; the chosen model is kept"]
    for wanted in style.models:
        found = _server_name((m.name for m in hello.models), wanted)
        if found is not None:
            return found, []
    current = settings.model or hello.default_model or "the server's default"
    return settings.model, [f"style {style.name}: the server has none of its models ({', '.join(style.models)}); "
                            f"using {current}"]


def _pick_loras(style: Style, settings: GenerationSettings, hello: ServerHello | None) -> tuple[tuple[LoraRef, ...],
                                                                                                list[str]]:
    offered = [info.name for info in hello.loras] if hello is not None else []
    chosen, skipped = list(settings.loras), []
    for lora in style.loras:
        found = _server_name(offered, lora.name)
        if found is None:
            skipped.append(lora.name)
        elif _server_name((c.name for c in chosen), found) is None:  # the painter's own weight for it wins
            chosen.append(LoraRef(found, lora.weight))
    notes = []
    if skipped:
        why = "not connected" if hello is None else "the server does not offer them"
        notes.append(f"style {style.name}: LoRAs skipped ({why}): {', '.join(skipped)}")
    return tuple(chosen), notes


def _pick_sampler(style: Style, sampler: str, model: str, hello: ServerHello | None) -> tuple[str | None, list[str]]:
    if not sampler or hello is None or not hello.samplers:
        return sampler or None, []
    info = next((m for m in hello.models if m.name == (model or hello.default_model)), None)
    offered = (info.samplers if info is not None and info.samplers else None) or hello.samplers
    found = _server_name(offered, sampler)
    if found is None:
        return None, [f"style {style.name}: the server has no sampler {sampler!r} for this model; keeping the "
                      "chosen one"]
    return found, []


def apply_style(style: Style, settings: GenerationSettings, hello: ServerHello | None, *,
                keep: Collection[str] = (), live: bool = False) -> tuple[GenerationSettings, tuple[str, ...]]:
    """``settings`` with ``style`` applied, and a note for each part of the style that could not be used.

    The prompt goes into the style's template and the style's negative prompt comes before the painter's. The
    model is the first of the style's that the server's ``hello`` lists, the LoRAs those it offers (added to
    the painter's own); sampler, steps and cfg are the style's (its ``live`` block's with ``live``). Fields
    named in ``keep`` (of ``PINNABLE``: what the painter set explicitly) stay as they are. Steps above the
    server's limit are lowered to it. A pure function: nothing is read or written.
    """
    notes: list[str] = []
    changes: dict[str, Any] = {
        "prompt": fill_template(style.prompt, settings.prompt),
        "negative_prompt": ", ".join(p for p in (style.negative_prompt.strip(), settings.negative_prompt.strip())
                                     if p),
    }
    if style.models and "model" not in keep:
        changes["model"], more = _pick_model(style, settings, hello)
        notes += more
    changes["loras"], more = _pick_loras(style, settings, hello)
    notes += more
    source = style.live if live else style
    if "sampler" not in keep:
        sampler, more = _pick_sampler(style, source.sampler, changes.get("model", settings.model), hello)
        notes += more
        if sampler is not None:
            changes["sampler"] = sampler
    if source.steps is not None and "steps" not in keep:
        steps = source.steps
        if hello is not None and steps > hello.limits.max_steps:
            notes.append(f"style {style.name}: {steps} steps -> {hello.limits.max_steps} (the server's limit)")
            steps = hello.limits.max_steps
        changes["steps"] = steps
    if source.cfg is not None and "cfg" not in keep:
        changes["cfg"] = source.cfg
    return replace(settings, **changes), tuple(notes)
