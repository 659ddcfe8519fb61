"""latentbrush protocol v1: typed messages and a sans-I/O codec (standard library only).

SPEC.md beside this file is the normative contract; ``vectors/`` holds conformance cases.
"""

from . import geometry, messages
from .checks import check_blob, check_job
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
from .geometry import round_half_up, upscale_rect, upscale_size
from .inputs import FREE_SIZE_ROLES, REFERENCE_MODES, ROLES, InputRef, as_v1_0, blob_keys, input_refs, job_inputs
from .lifecycle import JobStatus, check_hello, check_server_hello, negotiated_minor
from .limits import field_range
from .messages import *  # noqa: F403 - the message types are the package's API
from .operations import OPERATIONS
from .validate import from_dict, to_dict

__all__ = [
    "FATAL_CODES",
    "FREE_SIZE_ROLES",
    "OPERATIONS",
    "REFERENCE_MODES",
    "ROLES",
    "ErrorCode",
    "InputRef",
    "JobStatus",
    "ProtocolError",
    "as_v1_0",
    "blob_hash",
    "blob_keys",
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
    "field_range",
    "from_dict",
    "geometry",
    "input_refs",
    "job_inputs",
    "negotiated_minor",
    "round_half_up",
    "to_dict",
    "upscale_rect",
    "upscale_size",
    *messages.__all__,
]
