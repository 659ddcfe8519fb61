"""The GIMP procedures latentbrush registers, as plain data (no gi), plus their argument mapping.

One table describes each PDB procedure: name, menu label, operation and arguments. The plug-in
(``plugin.py``) turns it into ``Gimp.ImageProcedure``s; tests and docs read it directly. Values
coming back from a procedure config become ``GenerationSettings`` through ``settings_from_values``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from latentbrush.plugin.core.requests import (
    ControlSpec,
    GenerationSettings,
    ReferenceSpec,
    RegionSpec,
    default_preprocessor,
)
from latentbrush.plugin.core.styles import BUILTIN_DIR, DEFAULT_STYLE, Style, apply_style, load_styles
from latentbrush.protocol import REFINER_AT, JobInput, JobRequest, Limits, ServerHello, UpscaleParams, field_range
from latentbrush.protocol.messages import MAX_SEED  # 2**32 - 1: fits a GParamSpecUInt, not an int
from latentbrush.protocol.transport import DEFAULT_URL

MENU_PATH = "<Image>/Filters/latentbrush"
PLUGIN_BINARY = "latentbrush"  # the plug-in folder and entry file name GIMP requires to match
DEFAULT_SERVER = DEFAULT_URL
SERVER_ENV = "LATENTBRUSH_SERVER"


@dataclass(frozen=True)
class Arg:
    """One procedure argument. ``kind`` is "string", "int", "uint", "double", "boolean", "layer" (a layer of the
    image, or none) or "choice" (one of ``choices``: (value, label) pairs)."""

    name: str
    kind: str
    label: str
    blurb: str
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Procedure:
    name: str
    label: str
    blurb: str
    operation: str  # "inpaint", "img2img", "txt2img", "upscale", or "" for Cancel
    args: tuple[Arg, ...]
    needs_selection: bool = False


SERVER = Arg("server", "string", "Server", f"latentbrush server URL (empty: ${SERVER_ENV} or {DEFAULT_SERVER})", "")
PROMPT = Arg("prompt", "string", "Prompt", "What to paint", "")
NEGATIVE = Arg("negative-prompt", "string", "Negative prompt", "What to avoid", "")
MODEL = Arg("model", "string", "Model", "Model name as the server lists it (empty: the server's default)", "")
# ranges are the protocol's field limits; a server's lower limits apply once connected (``capped_to_server``)
STEPS = Arg("steps", "int", "Steps", "Denoising steps", 20, *field_range(JobRequest, "steps"))
SEED = Arg("seed", "uint", "Seed", "Seed of the noise (used when Random seed is off)", 0,
           *field_range(JobRequest, "seed"))
RANDOM_SEED = Arg("random-seed", "boolean", "Random seed", "Let the server pick a new seed", True)
CFG = Arg("cfg", "double", "Guidance", "Classifier-free guidance scale", 7.0, *field_range(JobRequest, "cfg"))


def _strength(default: float) -> Arg:
    low, high = field_range(JobRequest, "strength")
    return Arg("strength", "double", "Strength", "How much to change (1: repaint fully)", default, low, high)


BLEND_OUTWARD = Arg("blend-outward", "int", "Blend outward (px)",
                    "0: no pixel outside the selection changes; N: the soft edge may reach N px past it", 0,
                    *field_range(JobRequest, "mask_outward"))



def style_nick(name: str) -> str:
    """A style's value in a GIMP choice: lower case, dashes (a choice's nick is an identifier, not a label)."""
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-") or "style"


def style_choices(styles: Iterable[Style]) -> tuple[tuple[str, str], ...]:
    return tuple((style_nick(s.name), s.name + ("" if s.source == "builtin" else " (yours)")) for s in styles)


STYLE = Arg("style", "choice", "Style", "Prompt template, negative prompt, model, LoRAs, sampler, steps and "
            "guidance of a style (core/styles.py); Steps and Guidance left at their defaults take the style's",
            style_nick(DEFAULT_STYLE), choices=style_choices(load_styles(BUILTIN_DIR, None)[0]))
# an SDXL refiner (SPEC.md 9.13): typed as the server lists it, like the model (GIMP's dialogs are fixed forms)
REFINER = Arg("refiner", "string", "Refiner", "An SDXL refiner as the server lists it (`latentbrush models` marks "
              "them) that does the last part of the denoising of an SDXL model (empty: none)", "")
REFINER_FROM = Arg("refiner-at", "double", "Refiner from", "The fraction of the denoising after which the refiner "
                   "takes over (0.8: the model does 80%, the refiner the rest)", REFINER_AT,
                   *field_range(JobRequest, "refiner_at"))
GENERATION_ARGS = (STYLE, PROMPT, NEGATIVE, MODEL, REFINER, REFINER_FROM, STEPS, RANDOM_SEED, SEED, CFG, BLEND_OUTWARD)


def with_styles(args: tuple[Arg, ...], styles: Iterable[Style]) -> tuple[Arg, ...]:
    """``args`` with the style choice offering ``styles`` (the built-ins and the painter's, read when GIMP
    creates the procedure) instead of the built-ins alone."""
    choices = style_choices(styles)
    return tuple(replace(a, choices=choices) if a.name == STYLE.name and choices else a for a in args)


def styled(values: Mapping[str, object], settings: GenerationSettings, hello: ServerHello | None,
           styles: Iterable[Style]) -> tuple[GenerationSettings, tuple[str, ...]]:
    """``settings`` with the chosen style applied against the connected server's ``hello``; a model typed in the
    dialog, and Steps or Guidance changed from their defaults, win over the style's."""
    nick = str(values.get("style", "") or "")
    if not nick:
        return settings, ()
    style = next((s for s in styles if style_nick(s.name) == nick), None)
    if style is None:
        return settings, (f"no style {nick!r} any more: the settings are used as they are",)
    keep = {name for name, pinned in (("model", settings.model != ""), ("steps", settings.steps != STEPS.default),
                                      ("cfg", settings.cfg != CFG.default)) if pinned}
    return apply_style(style, settings, hello, keep=keep)

# One control (ControlNet) and one reference (IP-Adapter) per run: GIMP's dialog is one fixed form.
CONTROL_MODES = (
    ("scribble", "Scribble (dark strokes on white or on a transparent layer)"), ("lineart", "Line art"),
    ("softedge", "Soft edges"), ("canny", "Canny edges"), ("depth", "Depth map"), ("normal", "Normal map"),
    ("pose", "Pose skeleton"), ("tile", "Tile (a low-detail picture)"),
)
REFERENCE_MODES = (("reference", "Resemble it"), ("style", "Take its style"), ("composition", "Take its layout"))
CONTROL_ARGS = (
    Arg("control-layer", "layer", "Control layer", "A layer whose picture steers the result (none: no control)",
        None),
    Arg("control-mode", "choice", "Control mode", "What the control layer shows", "scribble",
        choices=CONTROL_MODES),
    Arg("control-strength", "double", "Control strength", "How strongly it steers (0: not at all)", 1.0,
        *field_range(JobInput, "weight")),
    Arg("control-start", "double", "Control start", "Fraction of the steps where the control starts", 0.0,
        *field_range(JobInput, "start")),
    Arg("control-end", "double", "Control end", "Fraction of the steps where the control ends", 1.0,
        *field_range(JobInput, "end")),
)
REFERENCE_ARGS = (
    Arg("reference-layer", "layer", "Reference layer",
        "A layer whose picture the result should follow (IP-Adapter; none: no reference)", None),
    Arg("reference-mode", "choice", "Reference mode", "What to take from the reference", "reference",
        choices=REFERENCE_MODES),
    Arg("reference-strength", "double", "Reference strength", "How strongly it counts (0: not at all)", 1.0,
        *field_range(JobInput, "weight")),
)
REGION_SLOTS = 2  # regions per run: a fixed form has fixed slots; each is a layer whose opacity is the mask
REGION_ARGS = tuple(arg for n in range(1, REGION_SLOTS + 1) for arg in (
    Arg(f"region-{n}-layer", "layer", f"Region {n} layer",
        "A layer whose opacity is where the region's prompt paints (none: no region)", None),
    Arg(f"region-{n}-prompt", "string", f"Region {n} prompt",
        "What to paint there (the main prompt is added after it and paints the rest)", ""),
))
GUIDE_ARGS = (*CONTROL_ARGS, *REFERENCE_ARGS, *REGION_ARGS)

PROCEDURES: tuple[Procedure, ...] = (
    Procedure(
        "plug-in-latentbrush-inpaint", "_Inpaint Selection...", "Repaint the selection from the prompt",
        "inpaint", (*GENERATION_ARGS, _strength(1.0), *GUIDE_ARGS, SERVER), needs_selection=True,
    ),
    Procedure(
        "plug-in-latentbrush-refine", "_Refine (img2img)...",
        "Rework the selection (or the whole image) at a strength below 1",
        "img2img", (*GENERATION_ARGS, _strength(0.5), *GUIDE_ARGS, SERVER),
    ),
    Procedure(
        "plug-in-latentbrush-generate", "_Generate...", "Paint the selection (or the canvas) from noise",
        "txt2img", (*GENERATION_ARGS, *GUIDE_ARGS, SERVER),
    ),
    Procedure(
        "plug-in-latentbrush-upscale", "_Upscale...", "Upscale the whole image (layers scaled, result on top)",
        "upscale",
        (
            Arg("scale", "double", "Scale", "Upscale factor", 2.0, *field_range(UpscaleParams, "scale")),
            Arg("upscaler", "string", "Upscaler", "Upscaler name (empty: best installed, 'lanczos': no model)", ""),
            Arg("refine", "boolean", "Refine after upscaling", "Repaint the upscaled image in tiles, adding detail",
                False),
            Arg("refine-strength", "double", "Refine strength", "How much the refine pass changes", 0.3,
                *field_range(UpscaleParams, "refine_strength")),
            Arg("unblur", "double", "Unblur", "Keep each refined tile to the upscaled picture (the server's tile "
                "ControlNet at this strength; 0: off)", 0.0, *field_range(UpscaleParams, "unblur")),
            PROMPT, MODEL, STEPS,
            SERVER,
        ),
    ),
    Procedure("plug-in-latentbrush-cancel", "_Cancel Job", "Cancel the job running on this image", "", ()),
)

# Every job procedure returns these (after the PDB status).
RETURN_VALUES = (
    Arg("result-image", "image", "Result image", "The image holding the result", None),
    Arg("result-layer", "layer", "Result layer", "The layer holding the result", None),
    Arg("seed-used", "uint", "Seed used", "The seed the server used (0 when it reported none)", 0, 0, MAX_SEED),
    Arg("previews", "int", "Previews", "Preview frames shown while the job ran", 0, 0, 1 << 30),
)


def procedure_named(name: str) -> Procedure:
    for proc in PROCEDURES:
        if proc.name == name:
            return proc
    raise KeyError(f"procedure: no latentbrush procedure named {name!r}")


def settings_from_values(
    values: Mapping[str, object], operation: str, preprocessors: tuple[str, ...] = ()
) -> GenerationSettings:
    """The core's settings from a procedure's argument values (names as in ``PROCEDURES``).

    ``preprocessors``: what the connected server's hello offers; a control whose mode has its own
    (scribble, canny) is sent through it, any other picture is used as the control image as it is.
    """
    random_seed = bool(values.get("random-seed", True))
    strength = float(values.get("strength", 1.0))  # type: ignore[arg-type]
    return GenerationSettings(
        prompt=str(values.get("prompt", "") or ""),
        negative_prompt=str(values.get("negative-prompt", "") or ""),
        model=str(values.get("model", "") or ""),
        steps=int(values.get("steps", 20)),  # type: ignore[call-overload]
        cfg=float(values.get("cfg", 7.0)),  # type: ignore[arg-type]
        seed=None if random_seed else int(values.get("seed", 0)),  # type: ignore[call-overload]
        strength=1.0 if operation == "txt2img" else strength,
        blend_outward=int(values.get("blend-outward", 0)),  # type: ignore[call-overload]
        upscaler=str(values.get("upscaler", "") or ""),
        scale=float(values.get("scale", 2.0)),  # type: ignore[arg-type]
        refine=bool(values.get("refine", False)),
        refine_strength=float(values.get("refine-strength", 0.3)),  # type: ignore[arg-type]
        unblur=float(values.get("unblur", 0.0)),  # type: ignore[arg-type]
        controls=_controls(values, preprocessors),
        references=_references(values),
        regions=_regions(values),
        refiner=str(values.get("refiner", "") or "").strip() if operation != "upscale" else "",
        refiner_at=float(values.get("refiner-at", REFINER_AT)),  # type: ignore[arg-type]
    )


def _controls(values: Mapping[str, object], preprocessors: tuple[str, ...]) -> tuple[ControlSpec, ...]:
    layer = values.get("control-layer")
    if layer is None:
        return ()
    mode = str(values.get("control-mode", "") or CONTROL_ARGS[1].default)
    return (ControlSpec(
        layer, mode=mode, preprocessor=default_preprocessor(mode, preprocessors),
        weight=float(values.get("control-strength", 1.0)),  # type: ignore[arg-type]
        start=float(values.get("control-start", 0.0)),  # type: ignore[arg-type]
        end=float(values.get("control-end", 1.0)),  # type: ignore[arg-type]
    ),)


def _references(values: Mapping[str, object]) -> tuple[ReferenceSpec, ...]:
    layer = values.get("reference-layer")
    if layer is None:
        return ()
    mode = str(values.get("reference-mode", "") or REFERENCE_ARGS[1].default)
    return (ReferenceSpec(layer, mode=mode, weight=float(values.get("reference-strength", 1.0))),)  # type: ignore[arg-type]


def _regions(values: Mapping[str, object]) -> tuple[RegionSpec, ...]:
    """The filled region slots: a layer and a prompt each (a slot with only one of them is left out)."""
    out = []
    for n in range(1, REGION_SLOTS + 1):
        layer, prompt = values.get(f"region-{n}-layer"), str(values.get(f"region-{n}-prompt", "") or "").strip()
        if layer is not None and prompt:
            out.append(RegionSpec(layer, prompt))
    return tuple(out)


def capped_to_server(settings: GenerationSettings, limits: Limits) -> tuple[GenerationSettings, tuple[str, ...]]:
    """``settings`` with steps and batch lowered to the connected server's limits, and a note per change.

    The procedure dialog is registered before any server is known, so it offers the protocol's
    range; this does what a Krita spin box does once the server's hello arrives.
    """
    changes: dict[str, int] = {}
    for name in ("steps", "batch"):
        high = field_range(JobRequest, name, limits)[1]
        if getattr(settings, name) > high:
            changes[name] = high
    notes = tuple(f"{name} {getattr(settings, name)} -> {high} (the server's limit)" for name, high in changes.items())
    return replace(settings, **changes), notes


def server_url(values: Mapping[str, object], env: Mapping[str, str]) -> str:
    """The ``server`` argument, else $LATENTBRUSH_SERVER, else the local default."""
    return str(values.get("server", "") or "") or env.get(SERVER_ENV, "") or DEFAULT_SERVER
