"""The job history inside each Krita document: the core's archive as a .kra annotation.

``Document.setAnnotation(type, description, QByteArray)`` / ``annotation(type)`` /
``annotationTypes()`` exist in Krita 5.1.5 and 6 (checked in the real apps, see
``tests/e2e/krita/scripts/history_e2e.py``); Krita saves the annotation as
``<image>/annotations/latentbrush-history`` inside the .kra and reads it back on open. Setting it
marks the document modified, which is right: it is only written when the history changed.
Images are PNG through QImage (lossless for the "bgra8" = ARGB32 buffers the Krita host uses).

Document wrappers are fresh Python objects on every call and compare with ``==`` (not hashable),
so documents are looked up by comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.buffers import swap_red_blue
from latentbrush.plugin.core.host import Pixels
from latentbrush.protocol.geometry import Rect

from ...qt import QBuffer, QByteArray, QImage, QIODevice, qbytes
from .images import scale_pixels, to_bgra, to_qimage

ANNOTATION_TYPE = "latentbrush-history"
ANNOTATION_DESCRIPTION = "latentbrush job history: results, parameters, thumbnails"
DEFAULT_BUDGET_MB = 50.0

log = logging.getLogger(__name__)


def _png_encode(pixels: Pixels) -> ha.EncodedImage:
    size = pixels.data_extent
    image = to_qimage(pixels.data, size.width, size.height, pixels.format)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise ValueError("Qt could not encode a PNG")
    buffer.close()
    return ha.EncodedImage("png", "bgra8", size.width, size.height, qbytes(data))


def _png_decode(encoded: ha.EncodedImage) -> bytes:
    image = QImage.fromData(encoded.data, "PNG")
    if image.isNull() or (image.width(), image.height()) != (encoded.width, encoded.height):
        raise ValueError(f"a stored PNG does not decode to {encoded.width}x{encoded.height}")
    data = to_bgra(image)
    return data if encoded.format == "bgra8" else swap_red_blue(data)


PNG = ha.Codec("png", _png_encode, _png_decode)
CODECS = {PNG.name: PNG, ha.ZLIB.name: ha.ZLIB}


def smooth_thumbnail(pixels: Pixels, side: int) -> Pixels:
    """A thumbnail scaled by Qt (smooth), as bgra8."""
    size = pixels.data_extent
    small = ha.thumbnail_size(size, side)
    return Pixels(Rect.of(small), "bgra8",
                  scale_pixels(pixels.data, size.width, size.height, pixels.format, small.width, small.height))


def thumbnail_pixels(job: ha.ArchivedJob) -> Pixels | None:
    """The job's stored thumbnail, or None when it is missing or does not decode."""
    if job.thumbnail is None:
        return None
    try:
        data = ha.decode(job.thumbnail, CODECS)
    except ValueError as exc:
        log.warning("history thumbnail of %s: %s", job.job_id, exc)
        return None
    return Pixels(Rect(0, 0, job.thumbnail.width, job.thumbnail.height), job.thumbnail.format, data)


def read(document: Any) -> ha.Unpacked:
    """The document's saved history; empty when it has none. Never raises."""
    try:
        if ANNOTATION_TYPE not in list(document.annotationTypes()):
            return ha.Unpacked(())
        return ha.unpack(qbytes(document.annotation(ANNOTATION_TYPE)))
    except (AttributeError, RuntimeError, TypeError) as exc:  # a Krita without the annotation API
        log.warning("reading the latentbrush history annotation: %r", exc)
        return ha.Unpacked((), f"This Krita cannot read the latentbrush history in documents ({exc})")


def write(document: Any, data: bytes) -> None:
    document.setAnnotation(ANNOTATION_TYPE, ANNOTATION_DESCRIPTION, QByteArray(data))


@dataclass
class _Entry:
    document: Any
    jobs: tuple[ha.ArchivedJob, ...]
    read_only: bool


class DocumentHistories:
    """The archived jobs of each open document, written back to it whenever they change."""

    def __init__(self, budget_mb: float = DEFAULT_BUDGET_MB) -> None:
        self.budget_bytes = int(budget_mb * ha.MB)
        self._entries: list[_Entry] = []

    def load(self, document: Any) -> str:
        """Read ``document``'s history once (later calls reuse it); returns a message for the painter or ""."""
        if self._entry(document) is not None:
            return ""
        unpacked = read(document)
        if unpacked.message:
            log.warning("latentbrush history: %s", unpacked.message)
        self._entries.append(_Entry(document, unpacked.jobs, unpacked.read_only))
        return unpacked.message

    def jobs(self, document: Any) -> tuple[ha.ArchivedJob, ...]:
        entry = self._entry(document)
        return () if entry is None else entry.jobs

    def find(self, job_id: str) -> tuple[Any, ha.ArchivedJob] | None:
        for entry in self._entries:
            for job in entry.jobs:
                if job.job_id == job_id:
                    return entry.document, job
        return None

    def add(self, document: Any, job: ha.ArchivedJob) -> ha.Packed | None:
        """Append a finished job and save the history into the document (None: it could not be saved)."""
        self.load(document)
        entry = self._entry(document)
        if entry is None:
            return None
        entry.jobs = (*entry.jobs, job)
        return self._save(entry)

    def remove(self, job_id: str) -> bool:
        for entry in self._entries:
            if any(j.job_id == job_id for j in entry.jobs):
                entry.jobs = tuple(j for j in entry.jobs if j.job_id != job_id)
                self._save(entry)
                return True
        return False

    def set_budget(self, budget_mb: float, document: Any = None) -> ha.Packed | None:
        """A new budget; ``document``'s history is packed again at once when that drops results."""
        self.budget_bytes = int(budget_mb * ha.MB)
        entry = None if document is None else self._entry(document)
        if entry is None or entry.read_only or not entry.jobs:
            return None
        if not ha.pack(entry.jobs, self.budget_bytes).dropped:
            return None  # nothing changes: leave the document unmodified
        return self._save(entry)

    def forget_closed(self, open_documents: Iterable[Any]) -> None:
        still_open = list(open_documents)
        self._entries = [e for e in self._entries if any(e.document == d for d in still_open)]

    def _entry(self, document: Any) -> _Entry | None:
        return next((e for e in self._entries if e.document == document), None)

    def _save(self, entry: _Entry) -> ha.Packed | None:
        if entry.read_only:
            return None  # a newer latentbrush's history: never overwrite it
        packed = ha.pack(entry.jobs, self.budget_bytes)
        entry.jobs = packed.jobs
        if entry.jobs:
            write(entry.document, packed.data)
        elif ANNOTATION_TYPE in list(entry.document.annotationTypes()):
            entry.document.removeAnnotation(ANNOTATION_TYPE)
        return packed
