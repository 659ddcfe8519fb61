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
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from .errors import ErrorCode, ProtocolError
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
_ID = re.compile(ID_PATTERN)
T = TypeVar("T")


def blob_hash(payload: bytes | memoryview) -> str:
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


def encode_frame(header: BlobHeader | ServerFrameHeader, payload: bytes | memoryview) -> bytes:
    head = json.dumps(to_dict(header), separators=(",", ":"), allow_nan=False).encode()
    return b"".join((HEADER_LEN.pack(len(head)), head, payload))


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


def _split_frame(data: bytes | memoryview, max_bytes: int) -> tuple[dict[str, Any], memoryview] | ProtocolError:
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


def _check_raw_length(
    fmt: str, width: int, height: int, stride: int | None, payload: memoryview
) -> ProtocolError | None:
    sizes = raw_payload_size(fmt, width, height, stride)
    if sizes is None:
        if stride is not None:
            return ProtocolError(ErrorCode.BAD_FIELD, "stride applies to raw formats only", "stride")
        if len(payload) == 0:
            return ProtocolError(ErrorCode.BAD_IMAGE, "empty payload", "payload")
        return None
    stride_, expected = sizes
    if stride_ < width * RAW_FORMATS[fmt]:
        return ProtocolError(ErrorCode.BAD_FIELD, "stride is shorter than one row of pixels", "stride")
    if len(payload) != expected:
        return ProtocolError(
            ErrorCode.BAD_IMAGE, f"raw payload is {len(payload)} bytes, expected {expected}", "payload"
        )
    return None


def decode_client_frame(
    data: bytes | memoryview,
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
    if formats is not None and header.format not in formats:
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"this server does not take {header.format} blobs", "format")
    if max_pixels is not None and header.width * header.height > max_pixels:
        return ProtocolError(ErrorCode.TOO_LARGE, f"image over {max_pixels} pixels", "width")
    err = _check_raw_length(header.format, header.width, header.height, header.stride, payload)
    if err:
        return err
    if blob_hash(payload) != header.hash:
        return ProtocolError(ErrorCode.HASH_MISMATCH, "payload does not hash to the announced id", "hash")
    return header, payload


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
    err = _check_raw_length(header.format, header.width, header.height, getattr(header, "stride", None), payload)
    return err or (header, payload)
