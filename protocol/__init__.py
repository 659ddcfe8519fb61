"""latentbrush protocol v1: typed messages and a sans-I/O codec (standard library only).

SPEC.md beside this file is the normative contract; ``vectors/`` holds conformance cases.
"""

from .codec import (
    blob_hash,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
)
from .errors import ErrorCode, ProtocolError
from .messages import *  # noqa: F403 - the message types are the package's API
from .messages import PROTOCOL_MINOR, PROTOCOL_VERSION
from .validate import check_job, from_dict, to_dict

__all__ = [
    "PROTOCOL_MINOR",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "ProtocolError",
    "blob_hash",
    "check_job",
    "decode_client_frame",
    "decode_client_message",
    "decode_server_frame",
    "decode_server_message",
    "encode_frame",
    "encode_message",
    "from_dict",
    "to_dict",
]
