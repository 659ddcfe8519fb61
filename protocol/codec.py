"""Encode and decode both frame kinds. Decoders never raise on hostile bytes: they return
a ProtocolError value, and they check sizes before reading or allocating anything.

Binary frame: ``u32 big-endian header length | UTF-8 JSON header | payload``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import struct
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from .errors import ErrorCode, ProtocolError
from .geometry import Rect
from .messages import (
    CLIENT_FRAMES,
    CLIENT_MESSAGES,
    ID_PATTERN,
    RAW_FORMATS,
    SERVER_FRAMES,
    SERVER_MESSAGES,
    BlobHeader,
    ClientMessage,
    ServerFrameHeader,
    ServerMessage,
)
from .validate import from_dict, is_unicode, raw_payload_size, to_dict

HEADER_LEN = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024  # a header larger than this is refused before it is parsed
MAX_TEXT_BYTES = 1024 * 1024  # text frames carry no pixels
MAX_SERVER_TEXT_BYTES = 16 * MAX_TEXT_BYTES  # model lists can be long; the client is more generous
MAX_INT_DIGITS = 40  # longer integer literals are refused before int() spends quadratic time on them
FRAGMENT_BYTES = 1024 * 1024  # frame_parts: small enough for the receiver to hash one while the next arrives
_ID = re.compile(ID_PATTERN)
HASH_MISMATCH = ProtocolError(ErrorCode.HASH_MISMATCH, "payload does not hash to the announced id", "hash")
T = TypeVar("T")


def blob_hash(payload: bytes | bytearray | memoryview) -> str:
    """The content address of a blob: sha256 of the payload bytes exactly as sent."""
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def encode_message(msg: ClientMessage | ServerMessage) -> str:
    """The text frame of ``msg``; always encodable as UTF-8, even when a string in it is not."""
    text = json.dumps(to_dict(msg), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text if is_unicode(text) else _without_lone_surrogates(text)


def _without_lone_surrogates(text: str) -> str:
    # a str can hold lone surrogates (from JSON "\ud800" escapes); UTF-8, so a WebSocket text
    # frame, cannot: U+FFFD replaces them, and split-up pairs are joined into their character
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _frame_head(header: BlobHeader | ServerFrameHeader) -> bytes:
    head = json.dumps(to_dict(header), separators=(",", ":"), allow_nan=False).encode()
    return HEADER_LEN.pack(len(head)) + head


def encode_frame(header: BlobHeader | ServerFrameHeader, payload: bytes | memoryview) -> bytes:
    return b"".join((_frame_head(header), payload))


def frame_parts(
    header: BlobHeader | ServerFrameHeader, payload: bytes | bytearray | memoryview, fragment: int = FRAGMENT_BYTES
) -> list[bytes | memoryview]:
    """``encode_frame``'s bytes as pieces to send as one fragmented WebSocket message, the payload uncopied.

    The pieces joined are exactly ``encode_frame(header, payload)`` (fragmenting is below the protocol,
    SPEC.md 2); the receiver can hash each piece while the next one travels.
    """
    view = memoryview(payload).cast("B")
    return [_frame_head(header), *(view[i : i + fragment] for i in range(0, len(view), fragment))]


# ----------------------------------------------------------------------------- JSON


def _byte_view(data: Any) -> memoryview | None:
    """A flat byte view of any buffer, or None for things that are not bytes."""
    if isinstance(data, str):
        return None
    try:
        return memoryview(data).cast("B")
    except (TypeError, ValueError):
        return None


def _byte_length_over(text: str, limit: int) -> bool:
    if len(text) > limit:  # every character takes at least one byte
        return True
    if len(text) * 4 <= limit:  # and at most four
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf without asking parse_constant
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # a repeated key would let two parsers read two different messages from the same bytes
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:40]!r}")
            seen.add(key)
    return obj


def _parse_json(data: Any, limit: int) -> dict[str, Any] | ProtocolError:
    if isinstance(data, str):
        if _byte_length_over(data, limit):
            return ProtocolError(ErrorCode.TOO_LARGE, f"text larger than {limit} bytes")
        text = data
    else:
        view = _byte_view(data)
        if view is None:
            return ProtocolError(ErrorCode.BAD_FRAME, f"expected text or bytes, got {type(data).__name__}")
        if len(view) > limit:
            return ProtocolError(ErrorCode.TOO_LARGE, f"text larger than {limit} bytes")
        try:
            text = bytes(view).decode("utf-8")
        except UnicodeDecodeError as exc:
            return ProtocolError(ErrorCode.BAD_JSON, f"not valid UTF-8: {str(exc)[:120]}")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {str(exc)[:120]}")
    if not isinstance(value, dict):
        return ProtocolError(ErrorCode.BAD_JSON, "must be a JSON object")
    return value


# ----------------------------------------------------------------------------- text messages


def _job_id_hint(obj: dict[str, Any]) -> str | None:
    """The id of a submitted job whose message failed, read without trusting the rest of it.

    Only for ``submit``: an error with a job id ends that job (SPEC.md 7.7), and a malformed
    ``cancel`` must not end the job it names.
    """
    job = obj.get("job") if obj.get("type") == "submit" else None
    candidate = job.get("id") if isinstance(job, dict) else None
    return candidate if isinstance(candidate, str) and _ID.fullmatch(candidate) else None


def _request_id_hint(obj: dict[str, Any]) -> str | None:
    """The ``request_id`` of a query whose message failed, so the error still answers it (SPEC.md 14)."""
    kind = obj.get("type")
    candidate = obj.get("request_id") if isinstance(kind, str) and kind.startswith("query_") else None
    return candidate if isinstance(candidate, str) and _ID.fullmatch(candidate) else None


def _decode_typed(obj: dict[str, Any], table: Mapping[str, type[T]], strict: bool) -> T | ProtocolError:
    if "type" not in obj:
        return ProtocolError(ErrorCode.MISSING_FIELD, "every message names its type", "type")
    kind = obj["type"]
    if not isinstance(kind, str):
        return ProtocolError(ErrorCode.BAD_FIELD, "must be a string", "type")
    cls = table.get(kind)
    if cls is None:
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", "type")
    result = from_dict(cls, obj, strict=strict)
    if isinstance(result, ProtocolError):
        job_id = result.job_id or _job_id_hint(obj)
        request_id = result.request_id or _request_id_hint(obj)
        if (job_id, request_id) != (result.job_id, result.request_id):
            result = dataclasses.replace(result, job_id=job_id, request_id=request_id)
    return result


def decode_client_message(data: str | bytes) -> ClientMessage | ProtocolError:
    """Server side: strict (unknown fields are errors, see SPEC.md "Compatibility").

    Returns a message or a ProtocolError; never raises.
    """
    obj = _parse_json(data, MAX_TEXT_BYTES)
    return obj if isinstance(obj, ProtocolError) else _decode_typed(obj, CLIENT_MESSAGES, strict=True)


def decode_server_message(data: str | bytes) -> ServerMessage | ProtocolError:
    """Client side: lenient (unknown fields ignored so 1.x servers can add fields). Never raises.

    An unknown ``type`` comes back as an UNKNOWN_TYPE error, which a client ignores (SPEC.md).
    """
    obj = _parse_json(data, MAX_SERVER_TEXT_BYTES)
    return obj if isinstance(obj, ProtocolError) else _decode_typed(obj, SERVER_MESSAGES, strict=False)


# ----------------------------------------------------------------------------- binary frames


def _split_frame(
    data: bytes | bytearray | memoryview, max_bytes: int
) -> tuple[dict[str, Any], memoryview] | ProtocolError:
    view = _byte_view(data)
    if view is None:
        return ProtocolError(ErrorCode.BAD_FRAME, f"a binary frame must be bytes, got {type(data).__name__}")
    if len(view) > max_bytes:
        return ProtocolError(ErrorCode.TOO_LARGE, f"frame larger than {max_bytes} bytes")
    if len(view) < HEADER_LEN.size:
        return ProtocolError(ErrorCode.BAD_FRAME, "frame shorter than its 4-byte header length")
    (head_len,) = HEADER_LEN.unpack_from(view)
    if head_len == 0:
        return ProtocolError(ErrorCode.BAD_FRAME, "header length is zero")
    if head_len > MAX_HEADER_BYTES:
        return ProtocolError(ErrorCode.BAD_FRAME, f"header length {head_len} over {MAX_HEADER_BYTES}")
    if HEADER_LEN.size + head_len > len(view):
        return ProtocolError(ErrorCode.BAD_FRAME, "header length runs past the end of the frame")
    header = _parse_json(view[HEADER_LEN.size : HEADER_LEN.size + head_len], MAX_HEADER_BYTES)
    if isinstance(header, ProtocolError):
        return header
    return header, view[HEADER_LEN.size + head_len :]


def _check_stride(fmt: str, width: int, stride: int | None) -> ProtocolError | None:
    """Step 5's checks that need no payload."""
    if fmt not in RAW_FORMATS:
        return ProtocolError(ErrorCode.BAD_FIELD, "stride applies to raw formats only", "stride") if stride else None
    if stride is not None and stride < width * RAW_FORMATS[fmt]:
        return ProtocolError(ErrorCode.BAD_FIELD, "stride is shorter than one row of pixels", "stride")
    return None


def _check_raw_length(fmt: str, width: int, height: int, stride: int | None, length: int) -> ProtocolError | None:
    err = _check_stride(fmt, width, stride)
    if err:
        return err
    sizes = raw_payload_size(fmt, width, height, stride)
    if sizes is None:
        return ProtocolError(ErrorCode.BAD_IMAGE, "empty payload", "payload") if length == 0 else None
    expected = sizes[1]
    if length != expected:
        return ProtocolError(ErrorCode.BAD_IMAGE, f"raw payload is {length} bytes, expected {expected}", "payload")
    return None


def payload_box(header: BlobHeader) -> Rect:
    """The pixels a blob frame's payload covers: the whole image, or a patch's ``rect`` (SPEC.md 8)."""
    return header.rect if header.rect is not None else Rect(0, 0, header.width, header.height)


def _check_blob_header(
    header: BlobHeader, max_pixels: int | None, formats: Collection[str] | None
) -> ProtocolError | None:
    """Steps 4 and 5 of SPEC.md 3.2 that need no payload."""
    if formats is not None and header.format not in formats:
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"this server does not take {header.format} blobs", "format")
    if max_pixels is not None and header.width * header.height > max_pixels:
        return ProtocolError(ErrorCode.TOO_LARGE, f"image over {max_pixels} pixels", "width")
    if (header.base is None) != (header.rect is None):  # a patch needs both
        missing = "rect" if header.rect is None else "base"
        return ProtocolError(ErrorCode.MISSING_FIELD, "a patch upload needs both base and rect", missing)
    if header.rect is not None:
        if header.format not in RAW_FORMATS:
            return ProtocolError(ErrorCode.BAD_FIELD, "only raw formats can be sent as a patch", "base")
        if not Rect(0, 0, header.width, header.height).contains(header.rect):
            return ProtocolError(ErrorCode.OUT_OF_BOUNDS, "rect is not inside the image", "rect")
    return _check_stride(header.format, payload_box(header).width, header.stride)


def decode_client_frame(
    data: bytes | bytearray | memoryview,
    max_bytes: int,
    max_pixels: int | None = None,
    *,
    formats: Collection[str] | None = None,
) -> tuple[BlobHeader, memoryview] | ProtocolError:
    """Server side: a blob upload. Returns (BlobHeader, payload) or ProtocolError; never raises.

    ``formats``: the server hello's ``blob_formats`` when the server offers fewer than all.
    The content hash is checked here, so a stored blob always matches its address.
    """
    split = _split_frame(data, max_bytes)
    if isinstance(split, ProtocolError):
        return split
    obj, payload = split
    header = _decode_typed(obj, CLIENT_FRAMES, strict=True)
    if isinstance(header, ProtocolError):
        return header
    err = _check_blob_header(header, max_pixels, formats)
    box = payload_box(header)
    err = err or _check_raw_length(header.format, box.width, box.height, header.stride, len(payload))
    if err:
        return err
    # a patch's hash addresses the whole image: the server checks it once it has built that (SPEC.md 8)
    if header.base is None and blob_hash(payload) != header.hash:
        return HASH_MISMATCH
    return header, payload


class ClientFrameReader:
    """``decode_client_frame`` for a frame that arrives in pieces (a fragmented WebSocket message).

    ``feed`` each piece, then ``result()``: the same answer ``decode_client_frame`` gives for the joined
    bytes, without joining them. Once the header has passed its checks the payload goes straight into one
    buffer from ``allocate(n)`` (raw formats: exactly the announced size), hashed piece by piece as it
    comes. A frame whose header is faulty is kept whole (never past ``max_bytes``) and decoded in one go
    at the end, so every refusal is the one-shot decoder's, in its order. Never raises on hostile bytes.
    """

    def __init__(
        self,
        max_bytes: int,
        max_pixels: int | None = None,
        *,
        formats: Collection[str] | None = None,
        allocate: Callable[[int], Any] = bytearray,
    ) -> None:
        self._limits = (max_bytes, max_pixels, formats)
        self._allocate = allocate
        self.head = bytearray()  # the length prefix and header (the whole frame once it is ``_kept``)
        self._size = 0
        self._head_len = 0
        self._kept = False  # decode ``head`` in one go at the end
        self._header: BlobHeader | None = None
        self._buffer: Any = None
        self._view: memoryview | None = None
        self._filled = 0
        self._overflow = False  # more payload than a raw header announced: counted, no longer stored
        self._hasher = hashlib.sha256()

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        data = memoryview(chunk).cast("B")
        self._size += len(data)
        if self._size > self._limits[0]:  # step 1 wins over everything: stop storing
            self.head, self._buffer, self._view = bytearray(), None, None
            return
        if self._header is None and not self._kept:
            data = self._read_head(data)
        if self._kept:
            self.head += data
        elif self._header is not None:
            self._payload(data)

    def _read_head(self, data: memoryview) -> memoryview:
        """Take the length prefix and header from ``data``; returns what follows them."""
        while self._header is None and not self._kept and data:
            want = HEADER_LEN.size if len(self.head) < HEADER_LEN.size else HEADER_LEN.size + self._head_len
            take = want - len(self.head)
            self.head += data[:take]
            data = data[take:]
            if len(self.head) < want:
                break
            if want == HEADER_LEN.size:
                (self._head_len,) = HEADER_LEN.unpack_from(self.head)
                self._kept = self._head_len == 0 or self._head_len > MAX_HEADER_BYTES
            else:
                self._accept_header()
        return data

    def _accept_header(self) -> None:
        max_bytes, max_pixels, formats = self._limits
        obj = _parse_json(memoryview(self.head)[HEADER_LEN.size :], MAX_HEADER_BYTES)
        header = obj if isinstance(obj, ProtocolError) else _decode_typed(obj, CLIENT_FRAMES, strict=True)
        if isinstance(header, ProtocolError) or _check_blob_header(header, max_pixels, formats) is not None:
            self._kept = True  # the one-shot decoder names the fault at the end
            return
        box = payload_box(header)
        sizes = raw_payload_size(header.format, box.width, box.height, header.stride)
        if sizes is None:
            self._buffer = bytearray()  # an encoded file: its size is known only at the end
        elif len(self.head) + sizes[1] <= max_bytes:  # a right-sized payload fits the frame limit: room for it
            self._buffer = self._allocate(sizes[1])
            self._view = memoryview(self._buffer).cast("B")
        else:
            self._overflow = True  # too large or of the wrong length whatever comes: count only
        self._header = header

    def _payload(self, data: memoryview) -> None:
        if self._overflow or not data:
            return
        if self._view is None:  # encoded: grows, bounded by max_bytes
            self._buffer += data
        elif self._filled + len(data) <= len(self._view):
            self._view[self._filled : self._filled + len(data)] = data
            self._filled += len(data)
        else:
            self._overflow, self._buffer, self._view = True, None, None
            return
        self._hasher.update(data)

    def result(self) -> tuple[BlobHeader, memoryview] | ProtocolError:
        max_bytes, max_pixels, formats = self._limits
        if self._size > max_bytes:
            return ProtocolError(ErrorCode.TOO_LARGE, f"frame larger than {max_bytes} bytes")
        header = self._header
        if header is None:
            return decode_client_frame(self.head, max_bytes, max_pixels, formats=formats)
        box = payload_box(header)
        length = self._size - len(self.head)
        err = _check_raw_length(header.format, box.width, box.height, header.stride, length)
        if err:
            return err
        if header.base is None and "sha256:" + self._hasher.hexdigest() != header.hash:
            return HASH_MISMATCH
        return header, memoryview(self._buffer).cast("B")


def decode_server_frame(
    data: bytes | memoryview, max_bytes: int = 2**31
) -> tuple[ServerFrameHeader, memoryview] | ProtocolError:
    """Client side: a preview or result. Returns (header, payload) or ProtocolError; never raises."""
    split = _split_frame(data, max_bytes)
    if isinstance(split, ProtocolError):
        return split
    obj, payload = split
    header = _decode_typed(obj, SERVER_FRAMES, strict=False)
    if isinstance(header, ProtocolError):
        return header
    err = _check_raw_length(header.format, header.width, header.height, getattr(header, "stride", None), len(payload))
    return err or (header, payload)
