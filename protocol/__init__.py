"""latentbrush protocol v1: typed messages and a sans-I/O codec (standard library only).

SPEC.md beside this file is the normative contract; ``vectors/`` holds conformance cases.
"""

from . import messages
from .checks import check_blob, check_job, upscale_rect, upscale_size
from .codec import (
    blob_hash,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
)
from .errors import FATAL_CODES, ErrorCode, ProtocolError
from .lifecycle import JobStatus, check_hello, check_server_hello, negotiated_minor
from .messages import *  # noqa: F403 - the message types are the package's API
from .validate import from_dict, to_dict

__all__ = [
    "FATAL_CODES",
    "ErrorCode",
    "JobStatus",
    "ProtocolError",
    "blob_hash",
    "check_blob",
    "check_hello",
    "check_job",
    "check_server_hello",
    "decode_client_frame",
    "decode_client_message",
    "decode_server_frame",
    "decode_server_message",
    "encode_frame",
    "encode_message",
    "from_dict",
    "negotiated_minor",
    "to_dict",
    "upscale_rect",
    "upscale_size",
    *messages.__all__,
]
