"""The job history as it is kept inside a document: records, parameters, thumbnails and result pixels.

An archive is a ZIP (stored, not deflated: the images are compressed already) holding
``manifest.json`` and one file per image. The manifest is self-describing::

    {"format": "latentbrush-history", "version": 1, "budget_bytes": 52428800,
     "jobs": [{"job_id", "op", "created", "finished", "group_name", "parameters": {prompt, negative_prompt,
               model, sampler, steps, cfg, strength, seeds, region, context, server},
               "thumbnail": IMAGE | null,
               "images": [{"layer_name", "bounds": [x, y, w, h], "seed", "image": IMAGE | null}]}]}
    IMAGE = {"path": "jobs/3/0.png", "encoding": "png" | "zlib", "format": "bgra8" | "rgba8",
             "width", "height"}

Jobs are oldest first. "zlib" is this module's own lossless layout: the raw pixels in ``format``
(rows tightly packed, top row first), zlib-compressed. Hosts that have a PNG encoder (Krita's
QImage) pass a codec for "png" instead. ``"image": null`` means the size budget dropped the full
result; thumbnails and parameters are always kept. Reading never raises: a missing, damaged or
newer archive gives an empty or partial history and a plain message.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from latentbrush.protocol.geometry import Rect, Size

from .history import JobRecord
from .host import Pixels

FORMAT = "latentbrush-history"
VERSION = 1
MANIFEST = "manifest.json"
THUMB_SIDE = 128
MB = 1024 * 1024
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)  # fixed, so the same history gives the same bytes
# More than one image costs beyond its data (ZIP headers, name twice, manifest entry): estimating
# high drops too few at first, and ``pack`` then drops exactly as many more as the real size needs.
_IMAGE_OVERHEAD_HIGH = 1024


@dataclass(frozen=True)
class EncodedImage:
    """One image as stored: ``data`` in ``encoding``, decoding to ``format`` pixels of width x height."""

    encoding: str
    format: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Codec:
    """A lossless image encoding: ``encode(pixels)`` and ``decode(image) -> raw bytes in image.format``."""

    name: str
    encode: Callable[[Pixels], EncodedImage]
    decode: Callable[[EncodedImage], bytes]


def _zlib_encode(pixels: Pixels) -> EncodedImage:
    size = pixels.data_extent
    return EncodedImage("zlib", pixels.format, size.width, size.height, zlib.compress(pixels.data, 6))


def _zlib_decode(image: EncodedImage) -> bytes:
    data = zlib.decompress(image.data)
    if len(data) != image.width * image.height * 4:
        raise ValueError(f"zlib image: {len(data)} bytes for {image.width}x{image.height}")
    return data


ZLIB = Codec("zlib", _zlib_encode, _zlib_decode)


@dataclass(frozen=True)
class ArchivedImage:
    """One result layer: its name and place, and its pixels unless the budget dropped them."""

    layer_name: str
    bounds: Rect
    seed: int | None
    image: EncodedImage | None


@dataclass(frozen=True)
class ArchivedJob:
    job_id: str
    op: str
    created: float
    finished: float | None
    parameters: Mapping[str, Any]  # JobRecord.provenance(): prompt, model, sampler, steps, cfg, seeds, ...
    thumbnail: EncodedImage | None
    images: tuple[ArchivedImage, ...]
    group_name: str = ""  # a batch's group layer name; "" for a single result

    @property
    def prompt(self) -> str:
        return str(self.parameters.get("prompt", ""))

    @property
    def complete(self) -> bool:
        """Every result's pixels are kept, so Apply can re-create the layer(s)."""
        return bool(self.images) and all(i.image is not None for i in self.images)

    @property
    def stored_bytes(self) -> int:
        return sum(len(i.image.data) for i in self.images if i.image is not None)

    def without_pixels(self) -> ArchivedJob:
        return replace(self, images=tuple(replace(i, image=None) for i in self.images))


@dataclass(frozen=True)
class Packed:
    data: bytes
    jobs: tuple[ArchivedJob, ...]  # what the archive holds now (dropped results without pixels)
    dropped: tuple[str, ...]  # job ids whose full results the budget dropped in this pack, oldest first
    budget_bytes: int

    @property
    def over_budget(self) -> bool:
        return len(self.data) > self.budget_bytes

    def message(self) -> str:
        """What the painter should know about this pack, or ""."""
        budget = f"{self.budget_bytes / MB:g} MB"
        parts = []
        if self.dropped:
            parts.append(f"History budget {budget}: dropped the full results of the {len(self.dropped)} oldest "
                         f"job(s); their thumbnails and parameters are kept")
        if self.over_budget:
            parts.append(f"History budget {budget}: the thumbnails alone take {len(self.data) / MB:.1f} MB")
        return "; ".join(parts)


@dataclass(frozen=True)
class Unpacked:
    jobs: tuple[ArchivedJob, ...]
    message: str = ""  # "" when everything was read
    read_only: bool = False  # a newer version wrote it: keep it as it is rather than lose what we cannot read


# ----------------------------------------------------------------------------- building


def thumbnail_size(size: Size, side: int = THUMB_SIDE) -> Size:
    """``size`` shrunk (never grown) to fit ``side`` x ``side``, aspect kept, at least 1 x 1."""
    scale = min(1.0, side / max(size.width, size.height, 1))
    return Size(max(1, round(size.width * scale)), max(1, round(size.height * scale)))


def sample_thumbnail(pixels: Pixels, side: int = THUMB_SIDE) -> Pixels:
    """A nearest-neighbour thumbnail, for hosts without a smooth scaler (4-byte formats)."""
    src = pixels.data_extent
    dst = thumbnail_size(src, side)
    if dst == src:
        return Pixels(Rect.of(src), pixels.format, pixels.data)
    row_bytes = src.width * 4
    xs = [(x * src.width // dst.width) * 4 for x in range(dst.width)]
    rows = []
    for y in range(dst.height):
        row = pixels.data[(y * src.height // dst.height) * row_bytes:][:row_bytes]
        rows.append(b"".join(row[x : x + 4] for x in xs))
    return Pixels(Rect.of(dst), pixels.format, b"".join(rows))


Thumbnailer = Callable[[Pixels, int], Pixels]


def archive_job(
    record: JobRecord,
    layers: Sequence[tuple[str, Pixels]],
    codec: Codec = ZLIB,
    thumbnailer: Thumbnailer = sample_thumbnail,
    group_name: str = "",
) -> ArchivedJob:
    """A finished job and the (name, pixels) of each result layer it added, encoded for the archive."""
    seeds = [r.seed for r in record.results]
    images = tuple(
        ArchivedImage(name, pixels.bounds, seeds[i] if i < len(seeds) else None, codec.encode(pixels))
        for i, (name, pixels) in enumerate(layers)
    )
    thumb = codec.encode(thumbnailer(layers[0][1], THUMB_SIDE)) if layers else None
    return ArchivedJob(record.job_id, record.op, record.created, record.finished, record.provenance(), thumb,
                       images, group_name)


def decode_layers(job: ArchivedJob, codecs: Mapping[str, Codec]) -> list[tuple[str, Pixels]]:
    """The (name, pixels) of each result layer; raises ValueError when a result's pixels are not kept."""
    out = []
    for image in job.images:
        if image.image is None:
            raise ValueError(f"the full result of {image.layer_name!r} was not kept (history size budget)")
        out.append((image.layer_name, Pixels(image.bounds, image.image.format, decode(image.image, codecs))))
    return out


def decode(image: EncodedImage, codecs: Mapping[str, Codec]) -> bytes:
    codec = codecs.get(image.encoding)
    if codec is None:
        raise ValueError(f"no decoder for {image.encoding!r} images here")
    return codec.decode(image)


def matches(prompt: str, query: str) -> bool:
    """Search by prompt: every word of ``query`` occurs in ``prompt``, ignoring case."""
    text = prompt.casefold()
    return all(word in text for word in query.casefold().split())


# ----------------------------------------------------------------------------- packing


def pack(jobs: Sequence[ArchivedJob], budget_bytes: int) -> Packed:
    """The archive of ``jobs`` (oldest first) within ``budget_bytes``.

    Thumbnails and parameters always stay; full results are kept newest first while they fit,
    so the budget drops the oldest ones first.
    """
    jobs = tuple(jobs)
    had_pixels = {j.job_id for j in jobs if j.stored_bytes}
    data = _build(jobs, budget_bytes)
    estimate = len(data)
    kept = list(jobs)
    for i, job in enumerate(jobs):  # oldest first
        if estimate <= budget_bytes:
            break
        if job.stored_bytes:
            estimate -= job.stored_bytes + _IMAGE_OVERHEAD_HIGH * sum(1 for im in job.images if im.image)
            kept[i] = job.without_pixels()
    data = _build(kept, budget_bytes)
    while len(data) > budget_bytes and any(j.stored_bytes for j in kept):  # the estimate was short
        i = next(k for k, j in enumerate(kept) if j.stored_bytes)
        kept[i] = kept[i].without_pixels()
        data = _build(kept, budget_bytes)
    dropped = tuple(j.job_id for j in kept if j.job_id in had_pixels and not j.stored_bytes)
    return Packed(data, tuple(kept), dropped, budget_bytes)


def _build(jobs: Sequence[ArchivedJob], budget_bytes: int) -> bytes:
    files: list[tuple[str, bytes]] = []

    def put(path: str, image: EncodedImage | None) -> dict[str, Any] | None:
        if image is None:
            return None
        path = f"{path}.{'png' if image.encoding == 'png' else image.encoding}"
        files.append((path, image.data))
        return {"path": path, "encoding": image.encoding, "format": image.format,
                "width": image.width, "height": image.height}

    entries = []
    for n, job in enumerate(jobs):
        entries.append({
            "job_id": job.job_id, "op": job.op, "created": job.created, "finished": job.finished,
            "group_name": job.group_name, "parameters": dict(job.parameters),
            "thumbnail": put(f"jobs/{n}/thumbnail", job.thumbnail),
            "images": [{"layer_name": i.layer_name, "bounds": list(i.bounds.xywh()), "seed": i.seed,
                        "image": put(f"jobs/{n}/{k}", i.image)} for k, i in enumerate(job.images)],
        })
    manifest = {"format": FORMAT, "version": VERSION, "budget_bytes": budget_bytes, "jobs": entries}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *files]:
            archive.writestr(zipfile.ZipInfo(name, _ZIP_DATE), data)
    return out.getvalue()


# ----------------------------------------------------------------------------- reading


def unpack(data: bytes) -> Unpacked:
    """The jobs of an archive; never raises. Damaged entries are skipped and named in the message."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError("not a latentbrush history")
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"unknown version {version!r}")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        return Unpacked((), f"The latentbrush history saved in this document could not be read ({exc}); "
                            "a new one starts with the next job")
    if version > VERSION:
        return Unpacked((), f"The latentbrush history in this document was saved by a newer latentbrush "
                            f"(version {version}); it is kept unchanged", read_only=True)
    jobs, bad = [], 0
    for entry in manifest.get("jobs", []):
        try:
            jobs.append(_job(entry, archive))
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error):
            bad += 1
    message = f"{bad} damaged job(s) in the saved latentbrush history were skipped" if bad else ""
    return Unpacked(tuple(jobs), message)


def _job(entry: dict[str, Any], archive: zipfile.ZipFile) -> ArchivedJob:
    def image(spec: dict[str, Any] | None) -> EncodedImage | None:
        if spec is None:
            return None
        return EncodedImage(str(spec["encoding"]), str(spec["format"]), int(spec["width"]), int(spec["height"]),
                            archive.read(str(spec["path"])))

    images = tuple(
        ArchivedImage(str(i["layer_name"]), Rect(*(int(v) for v in i["bounds"])),
                      None if i.get("seed") is None else int(i["seed"]), image(i.get("image")))
        for i in entry["images"]
    )
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ValueError("parameters")
    finished = entry.get("finished")
    return ArchivedJob(str(entry["job_id"]), str(entry["op"]), float(entry["created"]),
                       None if finished is None else float(finished), parameters, image(entry.get("thumbnail")),
                       images, str(entry.get("group_name", "")))
