"""The spool: finished, undelivered results on disk, so a restarted server can still resume (SPEC.md 11).

One folder per job, named by a hash of (client id, job id) so no client-chosen text becomes a
path: ``entry.json`` holds what a resume needs (the client id, the submit order, the job as its
``submit`` message and the final message, both in the protocol's JSON encoding), and each result
frame not yet handed to a connection is ``<index>.frame``, its bytes exactly as sent. A folder is
written under a temporary name and renamed into place, so a reader sees a whole entry or none;
folders are 0700 and files 0600, because the frames are the artist's pictures. Loop thread only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from latentbrush.protocol import (
    Cancelled,
    Done,
    Error,
    JobRequest,
    ProtocolError,
    Submit,
    decode_client_message,
    decode_server_message,
    encode_message,
)
from latentbrush.protocol.fields import ID_PATTERN

log = logging.getLogger(__name__)

FORMAT = 1  # entry.json's layout; another number is an entry this server cannot read
ENTRY = "entry.json"
TEMP_PREFIX = ".tmp-"  # half-written or half-deleted folders; removed at load
_CLIENT_ID = re.compile(ID_PATTERN)
_ENTRY_NAME = re.compile(r"^[0-9a-f]{32}$")


class SpoolError(ValueError):
    """An entry that cannot be read back (truncated, edited, from another format)."""


@dataclass(frozen=True)
class SpoolEntry:
    """One finished job as a resume would deliver it."""

    client_id: str
    seq: int  # submission order, so a resumed session hears its jobs in the order it sent them
    request: JobRequest
    final: Done | Error | Cancelled
    frames: Mapping[int, bytes]  # batch index -> result frame not yet handed to a connection


def entry_name(client_id: str, job_id: str) -> str:
    return hashlib.sha256(f"{client_id}\0{job_id}".encode()).hexdigest()[:32]


def encode_meta(entry: SpoolEntry) -> bytes:
    meta = {
        "format": FORMAT,
        "client_id": entry.client_id,
        "seq": entry.seq,
        "submit": encode_message(Submit(entry.request)),
        "final": encode_message(entry.final),
        "frames": sorted(entry.frames),
    }
    return json.dumps(meta, ensure_ascii=False).encode()


def decode_meta(data: bytes) -> tuple[str, int, JobRequest, Done | Error | Cancelled, list[int]]:
    """(client id, seq, request, final message, frame indices) of an ``entry.json``; ``SpoolError`` if unusable."""
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SpoolError(f"not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpoolError("not a spool entry of this server's format")
    client_id, seq, indices = meta.get("client_id"), meta.get("seq"), meta.get("frames")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise SpoolError("no valid client id")
    if type(seq) is not int or not isinstance(indices, list) or any(type(i) is not int or i < 0 for i in indices):
        raise SpoolError("no valid seq or frame list")
    submit = decode_client_message(meta.get("submit", ""))
    final = decode_server_message(meta.get("final", ""))
    if isinstance(submit, ProtocolError) or not isinstance(submit, Submit):
        raise SpoolError(f"no valid job: {submit}")
    if isinstance(final, ProtocolError) or not isinstance(final, (Done, Error, Cancelled)):
        raise SpoolError(f"no valid final message: {final}")
    if final.job_id != submit.job.id:
        raise SpoolError("the final message names another job")
    return client_id, seq, submit.job, final, indices


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, client_id: str, job_id: str) -> Path:
        return self.root / entry_name(client_id, job_id)

    def save(self, entry: SpoolEntry) -> None:
        """Write ``entry`` whole, replacing one of the same job; ``OSError`` when the disk refuses."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.root))  # 0700
        try:
            for index, frame in entry.frames.items():
                _write(temp / f"{index}.frame", frame)
            _write(temp / ENTRY, encode_meta(entry))
            self.delete(entry.client_id, entry.request.id)
            os.replace(temp, self._dir(entry.client_id, entry.request.id))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def drop_frame(self, client_id: str, job_id: str, index: int) -> None:
        """A connection took this frame: a resume after a restart must not send it again."""
        try:
            (self._dir(client_id, job_id) / f"{index}.frame").unlink()
        except FileNotFoundError:
            pass  # never spooled: it went out on the connection it was finished for
        except OSError as exc:
            log.warning("spool: cannot remove a delivered frame of job %s: %s", job_id, exc)

    def delete(self, client_id: str, job_id: str) -> None:
        """Delivered, expired or dropped: renamed out of sight first, so no half of it is ever loaded."""
        folder = self._dir(client_id, job_id)
        doomed = self.root / f"{TEMP_PREFIX}del-{folder.name}"
        try:
            os.replace(folder, doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("spool: cannot remove job %s: %s", job_id, exc)
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def load(self) -> list[SpoolEntry]:
        """Every readable entry, oldest first; unreadable ones are logged and deleted, leftovers removed."""
        try:
            children = sorted(self.root.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("spool %s cannot be read, no results are resumed from it: %s", self.root, exc)
            return []
        entries = []
        for child in children:
            if child.name.startswith(TEMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)  # a save or delete cut short
                continue
            if not _ENTRY_NAME.match(child.name) or not child.is_dir():
                continue  # not ours: left alone
            try:
                entries.append(_read(child))
            except (OSError, SpoolError) as exc:
                log.warning("spool: dropping unreadable entry %s: %s", child.name, exc)
                shutil.rmtree(child, ignore_errors=True)
        return sorted(entries, key=lambda e: e.seq)


def _read(folder: Path) -> SpoolEntry:
    client_id, seq, request, final, indices = decode_meta((folder / ENTRY).read_bytes())
    if folder.name != entry_name(client_id, request.id):
        raise SpoolError("the folder's name does not match its job")
    frames = {}
    for index in indices:
        with contextlib.suppress(FileNotFoundError):  # absent: a connection took it before the restart
            frames[index] = (folder / f"{index}.frame").read_bytes()
    return SpoolEntry(client_id, seq, request, final, frames)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
