"""The job history inside a GIMP image: the core's archive (``history_archive``) as an image parasite.

The parasite is persistent, so GIMP saves it in the .xcf and restores it on open, and not undoable:
the job's result layer stays the only undo step. Images are stored in the archive's "zlib" layout
(GIMP offers plug-ins no in-memory PNG encoder). Each job procedure is its own plug-in process, so
every finished job reads the parasite, appends itself and writes it back. The size budget comes
from $LATENTBRUSH_HISTORY_MB (default 50).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Mapping

from gi.repository import Gegl, Gimp
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.history import JobRecord
from latentbrush.plugin.core.host import Pixels
from latentbrush.protocol.geometry import Rect

from .host import RGBA_FORMAT

PARASITE_NAME = "latentbrush-history"
BUDGET_ENV = "LATENTBRUSH_HISTORY_MB"
DEFAULT_BUDGET_MB = 50.0

log = logging.getLogger(__name__)


def budget_bytes(env: Mapping[str, str]) -> int:
    try:
        megabytes = float(env.get(BUDGET_ENV, "") or DEFAULT_BUDGET_MB)
    except ValueError:
        megabytes = DEFAULT_BUDGET_MB
    return int(max(megabytes, 0.01) * ha.MB)


def read(image: Gimp.Image) -> ha.Unpacked:
    parasite = image.get_parasite(PARASITE_NAME)
    if parasite is None:
        return ha.Unpacked(())
    return ha.unpack(parasite_bytes(parasite))


def parasite_bytes(parasite: Gimp.Parasite) -> bytes:
    """A parasite's data as bytes (GIMP 3 hands it over as signed chars)."""
    data = parasite.get_data()
    return bytes(data) if isinstance(data, (bytes, bytearray)) else array("b", data).tobytes()


def new_parasite(data: bytes) -> Gimp.Parasite:
    # Gimp.Parasite.new takes a gint8 array: bytes above 127 must arrive as negative numbers
    return Gimp.Parasite.new(PARASITE_NAME, Gimp.PARASITE_PERSISTENT, array("b", data).tolist())


def _layer_pixels(layer: Gimp.Layer) -> Pixels:
    _, x, y = layer.get_offsets()
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA_FORMAT, Gegl.AbyssPolicy.NONE)
    return Pixels(Rect(x, y, w, h), "rgba8", bytes(data))


def append(image: Gimp.Image, record: JobRecord, budget: int) -> str:
    """Add a finished job (its result layers read back exactly) to the image's history; returns a note or ""."""
    saved = read(image)
    if saved.read_only:
        return saved.message
    layers = [(r.layer_name, _layer_pixels(r.layer)) for r in record.results if r.layer is not None]
    if not layers:
        return ""
    packed = ha.pack((*saved.jobs, ha.archive_job(record, layers)), budget)
    image.attach_parasite(new_parasite(packed.data))
    return "; ".join(m for m in (saved.message, packed.message()) if m)


def save_job(image: Gimp.Image, record: JobRecord, env: Mapping[str, str]) -> str:
    """``append`` that never fails the job: a problem is logged and returned as a note."""
    try:
        return append(image, record, budget_bytes(env))
    except Exception as exc:  # the result layer is there already; the history must not undo that
        log.exception("saving job %s into the image's history parasite", record.job_id)
        return f"the result could not be saved in the image's history: {exc}"
