"""Error codes of protocol v1 and the error value decoders return instead of raising."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(str, Enum):
    """Every error a peer may send; SPEC.md section "Errors" says what each means."""

    BAD_FRAME = "bad_frame"  # binary frame structure broken (short, header length past the end)
    BAD_JSON = "bad_json"  # text or header is not UTF-8 JSON object
    UNKNOWN_TYPE = "unknown_type"  # "type" names no message of this protocol version
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    BAD_FIELD = "bad_field"  # wrong type, out of range, not one of the allowed values
    TOO_LARGE = "too_large"  # frame, image or queue over a limit from the server hello
    VERSION_MISMATCH = "version_mismatch"
    NOT_READY = "not_ready"  # a message other than hello before the handshake completed
    UNAUTHORIZED = "unauthorized"  # token missing or wrong
    FORBIDDEN_ORIGIN = "forbidden_origin"  # browser Origin / Sec-Fetch-* or foreign Host
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_UPSCALER = "unknown_upscaler"
    UNKNOWN_SAMPLER = "unknown_sampler"
    UNKNOWN_BLOB = "unknown_blob"
    UNKNOWN_JOB = "unknown_job"
    DUPLICATE_JOB = "duplicate_job"
    HASH_MISMATCH = "hash_mismatch"  # blob payload does not hash to the announced id
    BAD_IMAGE = "bad_image"  # blob cannot be decoded (corrupt PNG, wrong raw length)
    SIZE_MISMATCH = "size_mismatch"  # blob size differs from the rectangle it is used for
    OUT_OF_BOUNDS = "out_of_bounds"  # rectangle not inside the canvas / context
    QUEUE_FULL = "queue_full"
    NOT_SUPPORTED = "not_supported"  # valid request this server or model cannot do
    OUT_OF_MEMORY = "out_of_memory"
    EXPIRED = "expired"  # a finished job's results were dropped (memory budget) before the client came back
    INTERNAL = "internal"


# The only errors that end the connection: the server sends them during the handshake, then closes.
FATAL_CODES: frozenset[ErrorCode] = frozenset(
    {ErrorCode.VERSION_MISMATCH, ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN_ORIGIN}
)


@dataclass(frozen=True)
class ProtocolError:
    """A decode or validation failure, as a value. ``field`` is a dotted path like ``job.region.width``.

    ``job_id`` names the job the failing message was about, when the decoder could still read it,
    so the error message sent back can be matched to the request.
    """

    code: ErrorCode
    message: str
    field: str | None = None
    job_id: str | None = None
    request_id: str | None = None  # the failing query's request_id (1.1), when it could still be read

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_CODES

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.code.value}{where}: {self.message}"


class ProtocolViolation(Exception):
    """Raised only by the internal validation walk; public decoders turn it into ProtocolError."""

    def __init__(self, error: ProtocolError):
        super().__init__(str(error))
        self.error = error
