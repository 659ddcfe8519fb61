"""Fetching a plan's files into the models folder (default) or the Hugging Face cache (``cache=True``).

Models folder: each file is fetched with huggingface_hub's ``http_get`` into a partial file under
``<models>/.downloads/`` that survives a failed run, so the next run resumes it with a Range request
(``hf_hub_download`` keeps no partial file between runs); once complete and verified it is moved to its
destination in one rename, so the backend never sees half a file.

Cache: ``hf_hub_download`` fetches into the shared Hugging Face cache (other tools reuse it; huggingface_hub
handles Xet and its own retries), and the destination becomes a link to the cached file (a copy where links
are not allowed).

Either way the file's sha256 (or, for small non-LFS files, its git blob id) is checked; a mismatch deletes
the file and is a DownloadError.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import DownloadError, explain
from .plan import STAGING, Plan, PlannedFile, VerifiedHashes, git_blob_sha1, partial_name, sha256_file
from .progress import Progress, human

log = logging.getLogger(__name__)

OnProgress = Callable[[Progress], None]
OnBytes = Callable[[int], None]  # bytes of the current file done so far


def bar_class(report: OnBytes) -> type:
    """A tqdm stand-in for huggingface_hub's ``tqdm_class``: it forwards the byte count and draws nothing."""

    class _Bar:
        def __init__(self, *args: Any, initial: int = 0, **kwargs: Any) -> None:
            self.n = int(initial or 0)
            report(self.n)

        def update(self, n: float | None = 1) -> None:
            self.n += int(n or 0)  # negative when huggingface_hub rewinds a resume the server ignored
            report(self.n)

        def close(self) -> None:
            pass

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return _Bar


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_space(plan: Plan, models_dir: Path, cache: bool) -> None:
    """DownloadError when the disk the files go to has too little room for what is left to fetch."""
    if cache:
        from huggingface_hub import constants

        where = Path(constants.HF_HUB_CACHE)
        need = plan.total_bytes
    else:
        where = models_dir
        staged = models_dir / STAGING
        need = sum(max(0, f.size - _size(staged / partial_name(f.repo, f.path))) for f in plan.to_fetch)
    free = shutil.disk_usage(_existing_parent(where)).free
    if need > free:
        raise DownloadError(f"not enough disk space on {where}: the download needs {human(need)}, "
                            f"{human(free)} is free")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def verify(path: Path, f: PlannedFile) -> str:
    """The file's sha256 ("" when unknown and not computed); DownloadError (the file deleted) on a mismatch."""
    if f.sha256:
        found, expected = sha256_file(path), f.sha256
    elif f.blob_id:
        found, expected = git_blob_sha1(path), f.blob_id
    else:
        return ""
    if found != expected:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{f.path} from {f.repo} came out different from what the Hub publishes (hash "
                            f"{found[:12]}..., expected {expected[:12]}...); the damaged file was deleted; "
                            "run this again to download it anew")
    return found if f.sha256 else ""


def fetch_direct(f: PlannedFile, models_dir: Path, report: OnBytes) -> Path:
    """``f`` into the models folder, resuming its partial file; the destination path."""
    from huggingface_hub.utils import WeakFileLock

    staging = models_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    part = staging / partial_name(f.repo, f.path)
    with WeakFileLock(part.with_suffix(".lock")):  # a second download of the same file waits for the first
        return _fetch_part(f, models_dir, part, report)


def _fetch_part(f: PlannedFile, models_dir: Path, part: Path, report: OnBytes) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(f.repo, f.path, revision=f.revision)
    meta = get_hf_file_metadata(url)  # the token comes from HF_TOKEN or the saved login, as everywhere
    size = meta.size if meta.size is not None else f.size
    have = _size(part)
    if have > size:  # left by another version of the file
        part.unlink()
        have = 0
    part.touch()  # an empty file has nothing to fetch but must still arrive
    if have < size:
        headers = build_hf_headers()
        location = meta.location or url
        if urlsplit(location).netloc != urlsplit(url).netloc:
            headers.pop("authorization", None)  # a signed CDN address: the token stays with the Hub
        log.debug("fetching %s/%s from byte %d of %d", f.repo, f.path, have, size)
        with part.open("ab") as out:
            http_get(location, out, resume_size=have, headers=headers, expected_size=size,
                     displayed_filename=f.path, tqdm_class=bar_class(report))
    report(size)
    digest = verify(part, f)
    dest = models_dir / f.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    return dest if not digest else _remembered(dest, digest, models_dir)


def _remembered(dest: Path, digest: str, models_dir: Path) -> Path:
    hashes = VerifiedHashes(models_dir)
    hashes.remember(dest, digest)
    hashes.save()
    return dest


def fetch_cached(f: PlannedFile, models_dir: Path, report: OnBytes) -> Path:
    """``f`` into the Hugging Face cache, linked (or copied) to its destination; the destination path."""
    from huggingface_hub import hf_hub_download

    snapshot = Path(hf_hub_download(f.repo, f.path, revision=f.revision, tqdm_class=bar_class(report)))
    blob = snapshot.resolve()
    report(f.size)
    try:
        digest = verify(blob, f)
    except DownloadError:
        snapshot.unlink(missing_ok=True)  # the cache's link to the deleted blob
        raise
    dest = models_dir / f.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    try:
        dest.symlink_to(blob)
    except OSError as exc:  # Windows without developer mode, some network drives
        log.info("cannot link %s to the cache (%s); copying it", dest, exc)
        shutil.copyfile(blob, dest)
    return dest if not digest else _remembered(dest, digest, models_dir)


def download(plan: Plan, models_dir: Path, cache: bool = False, on_progress: OnProgress | None = None) -> None:
    """Fetch every file of ``plan`` not yet present; DownloadError in plain words when one cannot be."""
    check_space(plan, models_dir, cache)
    fetch = fetch_cached if cache else fetch_direct
    overall_total = plan.total_bytes
    done_before = 0
    for f in plan.to_fetch:
        def report(done: int, f: PlannedFile = f, before: int = done_before) -> None:
            if on_progress is not None:
                done = max(0, min(done, f.size))
                on_progress(Progress(f.dest, done, f.size, before + done, overall_total))

        try:
            fetch(f, models_dir, report)
        except DownloadError:
            raise
        except Exception as exc:
            raise explain(exc, f.repo, f.gated) from exc
        done_before += f.size
