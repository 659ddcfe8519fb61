"""What a download would fetch: the sets' files resolved against the Hub's metadata, minus those already in place.

Planning asks the Hub once per repository (``model_info(files_metadata=True)``: every file's size, and the
sha256 of LFS files), pins the commit it saw, and checks the files already in the models folder by size and
hash. ``item_state`` answers the same question offline, from the folder alone, for ``models list``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import DownloadError, explain, gated_message, has_token
from .sets import ModelSet, SetItem

log = logging.getLogger(__name__)

STAGING = ".downloads"  # in the models folder: partial files and the record of verified hashes (hidden: not scanned)
VERIFIED_FILE = "verified.json"
HASH_CHUNK = 8 * 1024 * 1024
INSTALLED, PARTIAL, MISSING = "installed", "partial", "missing"


@dataclass(frozen=True)
class PlannedFile:
    set_name: str
    repo: str
    revision: str  # the commit the plan saw: every file of a repo comes from the same one
    path: str  # in the repository
    dest: str  # relative to the models folder, "/"-separated
    size: int
    sha256: str  # "" when neither the Hub (non-LFS files) nor the sets data know it
    blob_id: str  # git blob sha1 of a non-LFS file ("" for LFS files)
    licence: str
    gated: bool
    present: bool  # already in place with the right size and hash: not fetched


@dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]

    @property
    def to_fetch(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if not f.present)

    @property
    def total_bytes(self) -> int:
        """Bytes still to download."""
        return sum(f.size for f in self.to_fetch)

    @property
    def present_bytes(self) -> int:
        return sum(f.size for f in self.files if f.present)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a (small, non-LFS) file, as the Hub lists it."""
    from huggingface_hub.utils.sha import git_hash

    return git_hash(path.read_bytes())


class VerifiedHashes:
    """sha256 of files in the models folder, remembered by (size, mtime) so a second plan does not re-read GBs."""

    def __init__(self, models_dir: Path | None) -> None:
        self.path = models_dir / STAGING / VERIFIED_FILE if models_dir is not None else None
        self._known: dict[str, list[Any]] = {}
        if self.path is not None and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self._known = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._known = {}

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = os.path.realpath(path)
        known = self._known.get(key)
        if isinstance(known, list) and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(known[2])
        digest = sha256_file(path)
        self._known[key] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest

    def remember(self, path: Path, digest: str) -> None:
        stat = path.stat()
        self._known[os.path.realpath(path)] = [stat.st_size, stat.st_mtime_ns, digest]

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self._known, indent=0), encoding="utf-8")
        except OSError as exc:  # only a cache: the next plan hashes again
            log.debug("cannot save %s: %s", self.path, exc)


def is_present(path: Path, size: int, sha256: str, blob_id: str, hashes: VerifiedHashes) -> bool:
    """``path`` holds the file: the right size, and the right hash where one is known."""
    try:
        if not path.is_file() or path.stat().st_size != size:
            return False
        if sha256:
            return hashes.sha256(path) == sha256
        if blob_id:
            return git_blob_sha1(path) == blob_id
    except OSError:
        return False
    return True


def item_files(item: SetItem, names: Iterable[str]) -> list[tuple[str, str]]:
    """(path in the repo, path relative to the item) of the item's files among the repo's ``names``; marker last."""
    if not item.is_folder:
        return [(item.file, "")] if item.file in set(names) else []
    from huggingface_hub.utils import filter_repo_objects

    prefix = item.subfolder + "/" if item.subfolder else ""
    relative = sorted(n[len(prefix):] for n in names if n.startswith(prefix))
    matched = list(filter_repo_objects(relative, allow_patterns=list(item.allow_patterns)))
    matched.sort(key=lambda rel: rel == item.marker)  # stable: the marker moves to the end
    return [(prefix + rel, rel) for rel in matched]


def dest_of(item: SetItem, relative: str) -> str:
    return item.dest if not relative else (PurePosixPath(item.dest) / relative).as_posix()


InfoFn = Callable[[str, str], Any]  # (repo, revision) -> huggingface_hub ModelInfo with files metadata


def hub_info() -> InfoFn:
    from huggingface_hub import HfApi

    api = HfApi()  # reads HF_ENDPOINT and the token (HF_TOKEN or `hf auth login`) the usual way
    return lambda repo, revision: api.model_info(repo, revision=revision, files_metadata=True)


def make_plan(sets: Iterable[ModelSet], models_dir: Path, info: InfoFn | None = None,
              hashes: VerifiedHashes | None = None) -> Plan:
    """Every file of ``sets``, sized and hashed by the Hub, each marked present when it is already in place.

    DownloadError (plain words) when the Hub cannot be asked, a repo is gated without access, or a file the
    sets name is not in its repo.
    """
    info = info or hub_info()
    hashes = hashes or VerifiedHashes(models_dir)
    seen: dict[tuple[str, str], Any] = {}
    planned: list[PlannedFile] = []
    for model_set in sets:
        for item in model_set.items:
            key = (item.repo, item.revision)
            if key not in seen:
                try:
                    seen[key] = info(item.repo, item.revision)
                except Exception as exc:
                    raise explain(exc, item.repo, item.gated) from exc
            repo_info = seen[key]
            gated = item.gated or bool(getattr(repo_info, "gated", False))
            if gated and not has_token():  # say so before anything downloads, not after the first 10 GB
                raise DownloadError(gated_message(item.repo, False))
            planned.extend(_item_plan(model_set.name, item, repo_info, gated, models_dir, hashes))
    hashes.save()
    return Plan(tuple(planned))


def _item_plan(set_name: str, item: SetItem, repo_info: Any, gated: bool, models_dir: Path,
               hashes: VerifiedHashes) -> list[PlannedFile]:
    siblings = {s.rfilename: s for s in repo_info.siblings or ()}
    files = item_files(item, siblings)
    if not files:
        wanted = item.file or ", ".join(item.allow_patterns)
        raise DownloadError(f"{item.repo} has no {wanted} (the model set may be out of date; a newer latentbrush "
                            "may know where it went)")
    out = []
    for path, relative in files:
        sibling = siblings[path]
        lfs = sibling.lfs
        size = int(lfs.size if lfs is not None else (sibling.size or 0)) or (item.size if not item.is_folder else 0)
        known = item.known_sha256(relative)
        sha = str(lfs.sha256) if lfs is not None else known
        if known and sha != known:
            log.warning("%s/%s: the Hub lists sha256 %s, the model set %s; the Hub's file is what downloads",
                        item.repo, path, sha, known)
        blob_id = "" if lfs is not None else str(sibling.blob_id or "")
        dest = dest_of(item, relative)
        present = is_present(models_dir / dest, size, sha, blob_id, hashes)
        out.append(PlannedFile(set_name, item.repo, str(repo_info.sha or item.revision), path, dest, size, sha,
                               blob_id, item.licence, gated, present))
    return out


# ---------------------------------------------------------------------- offline state (models list, doctor)


def partial_name(repo: str, path: str) -> str:
    """The staging file of a download in progress (stable across runs, so the next run resumes it)."""
    return hashlib.sha256(f"{repo}\0{path}".encode()).hexdigest()[:32] + ".part"


def item_state(item: SetItem, models_dir: Path) -> str:
    """INSTALLED, PARTIAL (a download began) or MISSING, from the models folder alone."""
    target = models_dir / item.dest
    if not item.is_folder:
        if target.is_file():
            return INSTALLED
        return PARTIAL if (models_dir / STAGING / partial_name(item.repo, item.file)).is_file() else MISSING
    marker = item.marker or "config.json"
    if (target / marker).is_file():
        return INSTALLED
    return PARTIAL if target.is_dir() and any(target.iterdir()) else MISSING


def set_state(model_set: ModelSet, models_dir: Path) -> str:
    states = {item_state(item, models_dir) for item in model_set.items}
    if states == {INSTALLED}:
        return INSTALLED
    return MISSING if states == {MISSING} else PARTIAL
