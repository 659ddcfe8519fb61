"""The recommended model sets (``sets.json``) as frozen values, checked when read.

An item is one file of a Hub repository (``file``) or a folder snapshot (``allow_patterns``, optionally below
``subfolder``), with where it goes in the models folder (``dest``, relative, ``/``-separated) in the layout the
backend scans. A folder's ``marker`` (the file that makes the backend see it: ``model_index.json``,
``config.json``) is fetched last, so a half-downloaded folder is never picked up as a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

SETS_FILE = "sets.json"


class SetsError(ValueError):
    """The sets data is malformed (a bug in sets.json or in a test's file)."""


@dataclass(frozen=True)
class SetItem:
    repo: str
    dest: str  # relative to the models folder: the file (``file`` items) or the folder (snapshots)
    size: int  # best-known bytes (all files of a snapshot together); the Hub's metadata replaces it when planning
    licence: str
    gated: bool = False
    revision: str = "main"
    file: str = ""  # path in the repo, for one-file items
    allow_patterns: tuple[str, ...] = ()  # for folder snapshots (fnmatch, as huggingface_hub matches them)
    subfolder: str = ""  # snapshots: only files below it, placed relative to it
    marker: str = ""  # snapshots: fetched last; its presence means "installed"
    sha256: tuple[tuple[str, str], ...] = ()  # (path relative to the item, "" for a file item; its sha256), if known
    note: str = ""

    @property
    def is_folder(self) -> bool:
        return not self.file

    def known_sha256(self, relative: str) -> str:
        return dict(self.sha256).get(relative, "")


@dataclass(frozen=True)
class ModelSet:
    name: str
    title: str
    description: str
    items: tuple[SetItem, ...]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def gated(self) -> bool:
        return any(item.gated for item in self.items)

    @property
    def licences(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.licence for item in self.items))


def _relative(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SetsError(f"{where}: dest must be a non-empty string")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise SetsError(f"{where}: dest {value!r} must be a relative path inside the models folder")
    return path.as_posix()


def _item(raw: Any, where: str) -> SetItem:
    if not isinstance(raw, dict):
        raise SetsError(f"{where}: an item must be an object")
    for key in ("repo", "dest", "size", "licence"):
        if key not in raw:
            raise SetsError(f"{where}: missing {key!r}")
    if not isinstance(raw["repo"], str) or raw["repo"].count("/") != 1:
        raise SetsError(f"{where}: repo must look like owner/name, got {raw['repo']!r}")
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise SetsError(f"{where}: size must be a positive number of bytes")
    file, patterns = raw.get("file", ""), raw.get("allow_patterns", [])
    if bool(file) == bool(patterns):
        raise SetsError(f"{where}: give either file or allow_patterns")
    sha = raw.get("sha256", {})
    if (isinstance(sha, str) and patterns) or not isinstance(sha, (str, dict)):
        raise SetsError(f"{where}: sha256 is a string for a file, an object of file -> sha256 for a folder")
    pairs = (("", sha),) if isinstance(sha, str) else tuple(sha.items())  # "": the file item itself
    for _, value in pairs:
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise SetsError(f"{where}: sha256 {value!r} is not 64 lowercase hex digits")
    return SetItem(
        repo=raw["repo"], dest=_relative(raw["dest"], where), size=size, licence=str(raw["licence"]),
        gated=bool(raw.get("gated", False)), revision=str(raw.get("revision", "main")), file=str(file),
        allow_patterns=tuple(patterns), subfolder=str(raw.get("subfolder", "")).strip("/"),
        marker=str(raw.get("marker") or (_default_marker(patterns) if patterns else "")), sha256=pairs,
        note=str(raw.get("note", "")),
    )


def _default_marker(patterns: list[str]) -> str:
    """The file that makes the backend see a folder: a pipeline's model_index.json, else a model's config.json."""
    return "model_index.json" if "model_index.json" in patterns else "config.json"


def parse_sets(data: Any) -> tuple[ModelSet, ...]:
    """The sets in ``data`` (sets.json's content); SetsError names the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("sets"), list):
        raise SetsError('the sets data must be an object with a "sets" list')
    sets: list[ModelSet] = []
    dests: dict[str, str] = {}
    for raw in data["sets"]:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name or any(s.name == name for s in sets):
            raise SetsError(f"every set needs a unique name (got {name!r})")
        items = tuple(_item(item, f"set {name} item {i}") for i, item in enumerate(raw.get("items") or []))
        if not items:
            raise SetsError(f"set {name} has no items")
        for item in items:
            if item.dest in dests:
                raise SetsError(f"set {name}: {item.dest} is also a destination in set {dests[item.dest]}")
            dests[item.dest] = name
        sets.append(ModelSet(name, str(raw.get("title", name)), str(raw.get("description", "")), items))
    return tuple(sets)


def load_sets(path: Path | None = None) -> tuple[ModelSet, ...]:
    """The shipped sets, or those of ``path`` (tests, and anyone who keeps their own list)."""
    try:
        text = path.read_text(encoding="utf-8") if path is not None else (
            resources.files(__package__).joinpath(SETS_FILE).read_text(encoding="utf-8"))
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise SetsError(f"cannot read the model sets{f' from {path}' if path else ''}: {exc}") from exc
    return parse_sets(data)


def select(sets: tuple[ModelSet, ...], names: list[str]) -> tuple[ModelSet, ...]:
    """The sets named (in the order given, each once); SetsError listing the known names for an unknown one."""
    by_name = {s.name: s for s in sets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SetsError(f"unknown set {', '.join(unknown)} (known: {', '.join(by_name)})")
    return tuple(by_name[n] for n in dict.fromkeys(names))
