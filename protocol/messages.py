"""Typed messages of protocol v1 (SPEC.md is normative; keep both in step).

Every message is a frozen dataclass. Field constraints live in ``field(metadata=...)`` so one
generic walk (``validate.py``) checks types, ranges and choices and names the failing field.
Text messages carry ``type``; binary frames carry a JSON header whose ``type`` is one of
``blob``, ``preview`` or ``result`` (``codec.py``).

Decoding is strict on the server (unknown fields are errors) except for classes marked
``LENIENT``: the client hello must parse on every 1.x server, whatever a newer client adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, get_args

from .errors import ProtocolError
from .fields import HASH_PATTERN, ID_PATTERN, MAX_ID_LEN, MAX_PROMPT_LEN, MAX_SEED, constraint
from .geometry import MAX_SIDE, Rect, Size  # the wire's rectangle is the geometry type
from .inputs import MAX_INPUTS, JobInput

__all__ = [  # grouped: constants, type aliases, classes
    "CANCEL_SUPERSEDED",
    "CLIENT_FRAMES",
    "CLIENT_MESSAGES",
    "HASH_PATTERN",
    "ID_PATTERN",
    "MAX_ID_LEN",
    "MAX_PROMPT_LEN",
    "MAX_SEED",
    "MAX_SIDE",
    "PREVIEW_FORMATS",
    "PREVIEW_NONE",
    "PROTOCOL_MINOR",
    "PROTOCOL_VERSION",
    "RAW_FORMATS",
    "REFINER_AT",
    "RESULT_FORMATS",
    "SERVER_FRAMES",
    "SERVER_MESSAGES",
    "BlobHeader",
    "BlobStored",
    "BlobsAnswer",
    "Cancel",
    "Cancelled",
    "Capabilities",
    "ClientHello",
    "ClientMessage",
    "ControlInfo",
    "Done",
    "Error",
    "ImageFormat",
    "JobInfo",
    "JobInput",
    "JobRequest",
    "JobState",
    "Limits",
    "LoraInfo",
    "LoraRef",
    "ModelInfo",
    "ModelsAnswer",
    "Operation",
    "Prefill",
    "PreviewHeader",
    "Progress",
    "QueryBlobs",
    "QueryModels",
    "QueryQueue",
    "QueueAnswer",
    "Queued",
    "Rect",
    "ReferenceInfo",
    "ResultHeader",
    "SamplerPreset",
    "SeamFix",
    "ServerFrameHeader",
    "ServerHello",
    "ServerMessage",
    "Size",
    "Started",
    "Submit",
    "UpscaleParams",
]

PROTOCOL_VERSION = 1
PROTOCOL_MINOR = 1  # 1.1: named job inputs, request ids on queries (SPEC.md 14)



Operation = Literal["txt2img", "img2img", "inpaint", "upscale", "preprocess"]
Prefill = Literal["auto", "none", "blur", "color", "noise", "telea"]
SeamFix = Literal["none", "band", "half_tile"]
ImageFormat = Literal["rgba8", "bgra8", "gray8", "png", "jpeg", "webp"]
RAW_FORMATS: dict[str, int] = {"rgba8": 4, "bgra8": 4, "gray8": 1}  # bytes per pixel
PREVIEW_FORMATS = ("jpeg", "png", "webp", "rgba8", "bgra8")
PREVIEW_NONE = "none"  # JobRequest.preview_format value that turns previews off
REFINER_AT = 0.8  # JobRequest.refiner_at when absent: the refiner does the last 20% of the denoising
CANCEL_SUPERSEDED = "superseded"  # Cancelled.reason (1.1): a newer job of the same live stream took over
RESULT_FORMATS = ("png", "rgba8", "bgra8", "webp")
JobState = Literal["queued", "started", "done", "error", "cancelled"]


_c = constraint  # short, because every field uses it


# ----------------------------------------------------------------------------- value types
# Size and Rect live in geometry.py (imported above) with the functions on them.


@dataclass(frozen=True)
class UpscaleParams:
    upscaler: str = field(default="", metadata=_c(max_len=256))  # "" = best installed, "lanczos" = no model
    scale: float = field(default=2.0, metadata=_c(min=1.0, max=8.0))
    target: Size | None = None  # exact output size; overrides scale
    tile: int = field(default=512, metadata=_c(min=64, max=4096))
    overlap: int = field(default=32, metadata=_c(min=0, max=512))
    refine: bool = False  # tiled img2img pass after the model upscale
    refine_strength: float = field(default=0.3, metadata=_c(min=0.0, max=1.0))
    refine_tile: int = field(default=512, metadata=_c(min=256, max=2048))
    refine_padding: int = field(default=32, metadata=_c(min=0, max=512))
    refine_mask_blur: int = field(default=8, metadata=_c(min=0, max=256))
    seam_fix: SeamFix = "none"
    unblur: float | None = field(default=None, metadata=_c(min=0.0, max=2.0))  # 1.1: tile ControlNet weight


@dataclass(frozen=True)
class JobRequest:
    """One serializable request per job. Rectangles are canvas pixels.

    ``context`` is the box whose pixels ``image`` (and ``mask``) hold; ``region`` is where the
    result goes and must lie inside ``context``. For txt2img without an image, context
    defaults to region.
    """

    id: str = field(metadata=_c(pattern=ID_PATTERN))
    op: Operation
    canvas: Size
    region: Rect
    context: Rect | None = None
    image: str | None = field(default=None, metadata=_c(pattern=HASH_PATTERN))
    mask: str | None = field(default=None, metadata=_c(pattern=HASH_PATTERN))
    inputs: tuple[JobInput, ...] | None = field(default=None, metadata=_c(items_max=MAX_INPUTS))  # 1.1, inputs.py
    prompt: str = field(default="", metadata=_c(max_len=MAX_PROMPT_LEN))
    negative_prompt: str = field(default="", metadata=_c(max_len=MAX_PROMPT_LEN))
    model: str = field(default="", metadata=_c(max_len=256))  # "" = server default
    sampler: str = field(default="Euler a", metadata=_c(max_len=64))
    steps: int = field(default=20, metadata=_c(min=1, max=200))
    cfg: float = field(default=7.0, metadata=_c(min=0.0, max=30.0))
    seed: int | None = field(default=None, metadata=_c(min=0, max=MAX_SEED))  # None = server picks
    strength: float = field(default=1.0, metadata=_c(min=0.0, max=1.0))
    batch: int = field(default=1, metadata=_c(min=1, max=16))
    resolution: Size | None = None  # processing size; None = the model's native size
    mask_grow: int = field(default=0, metadata=_c(min=0, max=1024))
    mask_feather: int = field(default=0, metadata=_c(min=0, max=1024))
    mask_blend: int = field(default=0, metadata=_c(min=0, max=1024))
    # 1.1: how far past the sent mask the result may reach; None = as far as the grown mask (1.0)
    mask_outward: int | None = field(default=None, metadata=_c(min=0, max=1024))
    prefill: Prefill = "auto"
    prefill_color: tuple[int, ...] | None = field(default=None, metadata=_c(items_min=3, items_max=3, min=0, max=255))
    upscale: UpscaleParams | None = None
    preview_format: str = field(default="jpeg", metadata=_c(max_len=16))  # "none" disables previews
    preview_max_side: int = field(default=512, metadata=_c(min=16, max=4096))
    result_format: str = field(default="png", metadata=_c(max_len=16))
    # 1.1: a live stream (SPEC.md 9.11): admitting this job supersedes the session's earlier jobs of the stream
    stream: str | None = field(default=None, metadata=_c(pattern=ID_PATTERN))
    # 1.1: LoRAs on the job's model, besides any ``<lora:name:weight>`` tags in the prompt (SPEC.md 9.12)
    loras: tuple[LoraRef, ...] | None = field(default=None, metadata=_c(items_max=16))  # None = none
    # 1.1: an SDXL refiner model that takes over the denoising at fraction ``refiner_at`` (SPEC.md 9.13)
    refiner: str | None = field(default=None, metadata=_c(max_len=256))
    refiner_at: float | None = field(default=None, metadata=_c(min=0.0, max=1.0))  # None = REFINER_AT


@dataclass(frozen=True)
class Capabilities:
    LENIENT: ClassVar[bool] = True  # part of the hello: later minors may add capabilities
    preview_formats: tuple[str, ...] = field(default=("jpeg",), metadata=_c(items_max=8, max_len=16))
    result_formats: tuple[str, ...] = field(default=("png",), metadata=_c(items_max=8, max_len=16))


@dataclass(frozen=True)
class SamplerPreset:
    """1.1: the sampler, steps and cfg a few-step model or LoRA is made for (LCM, Turbo, Lightning, ...)."""

    sampler: str = field(metadata=_c(max_len=64))  # one of the hello's samplers
    steps: int = field(metadata=_c(min=1, max=200))
    cfg: float = field(metadata=_c(min=0.0, max=30.0))


@dataclass(frozen=True)
class LoraRef:
    """1.1: a LoRA (or LyCORIS) applied to a job's model, scaled by ``weight`` (SPEC.md 9.12)."""

    name: str = field(metadata=_c(max_len=256))  # one of the hello's ``loras``
    weight: float = field(default=1.0, metadata=_c(min=-4.0, max=4.0))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    base: str  # "sd15", "sdxl", "tiny", ...
    inpaint: bool  # a 9-channel inpainting UNet
    resolution: int  # native side in pixels
    source: str = ""  # "builtin", "folder", "file", "hub"
    preset: SamplerPreset | None = None  # 1.1: a few-step model's settings; None for ordinary models
    samplers: tuple[str, ...] = ()  # 1.1: the hello's samplers that fit this model's family; () = all of them


@dataclass(frozen=True)
class LoraInfo:
    """1.1: a LoRA file the server offers for ``JobRequest.loras`` and ``<lora:name:weight>`` prompt tags."""

    name: str
    family: str  # the models it fits: "sd15", "sdxl", "tiny", ...


@dataclass(frozen=True)
class ControlInfo:
    """1.1: a control model (ControlNet) the server offers for ``control`` inputs."""

    name: str
    mode: str  # scribble, lineart, softedge, canny, depth, normal, pose, tile, inpaint; "" = not stated
    family: str  # the models it steers: "sd15", "sdxl", "tiny"
    kind: str = "controlnet"  # or "t2i_adapter": steers Generate only, from the first step


@dataclass(frozen=True)
class ReferenceInfo:
    """1.1: a reference model (IP-Adapter, with its image encoder) the server offers for ``reference`` inputs."""

    name: str
    family: str  # the models it steers: "sd15", "sdxl", "tiny"


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int
    max_pixels: int
    max_queue: int
    max_batch: int
    max_steps: int


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: JobState
    position: int | None = None  # 0 = running next; None when not queued
    op: str = ""


# ----------------------------------------------------------------------------- client -> server


@dataclass(frozen=True)
class ClientHello:
    TYPE: ClassVar[str] = "hello"
    LENIENT: ClassVar[bool] = True  # unknown fields are ignored, so a newer client's first message always parses
    protocol: int = field(metadata=_c(min=0, max=2**31 - 1))
    client: str = field(metadata=_c(max_len=128))
    token: str = field(default="", metadata=_c(max_len=512))
    client_id: str | None = field(default=None, metadata=_c(pattern=ID_PATTERN))  # resume this session
    minor: int = field(default=0, metadata=_c(min=0, max=2**31 - 1))
    capabilities: Capabilities = Capabilities()


@dataclass(frozen=True)
class Submit:
    TYPE: ClassVar[str] = "submit"
    job: JobRequest


@dataclass(frozen=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    job_id: str = field(metadata=_c(pattern=ID_PATTERN))


@dataclass(frozen=True)
class QueryBlobs:
    """Ask which blobs the server already holds, so unchanged crops are not sent again."""

    TYPE: ClassVar[str] = "query_blobs"
    hashes: tuple[str, ...] = field(metadata=_c(items_max=64, pattern=HASH_PATTERN))
    request_id: str | None = field(default=None, metadata=_c(pattern=ID_PATTERN))  # 1.1: echoed in the answer


@dataclass(frozen=True)
class QueryQueue:
    TYPE: ClassVar[str] = "query_queue"
    request_id: str | None = field(default=None, metadata=_c(pattern=ID_PATTERN))  # 1.1


@dataclass(frozen=True)
class QueryModels:
    TYPE: ClassVar[str] = "query_models"
    request_id: str | None = field(default=None, metadata=_c(pattern=ID_PATTERN))  # 1.1


# ----------------------------------------------------------------------------- server -> client


@dataclass(frozen=True)
class ServerHello:
    TYPE: ClassVar[str] = "hello"
    protocol: int
    minor: int
    server: str
    client_id: str
    resumed: bool
    device: str
    dtype: str
    models: tuple[ModelInfo, ...]
    upscalers: tuple[str, ...]
    samplers: tuple[str, ...]
    limits: Limits
    default_model: str = ""
    blob_formats: tuple[str, ...] = ("rgba8", "bgra8", "gray8", "png", "jpeg", "webp")
    preview_formats: tuple[str, ...] = PREVIEW_FORMATS
    result_formats: tuple[str, ...] = RESULT_FORMATS
    controls: tuple[ControlInfo, ...] = ()  # 1.1
    preprocessors: tuple[str, ...] = ()  # 1.1: what a control input's ``preprocessor`` may name
    references: tuple[ReferenceInfo, ...] = ()  # 1.1
    reference_modes: tuple[str, ...] = ()  # 1.1: the ``mode`` values this server does for reference inputs
    # 1.1: the few-step presets this server knows, by name, for a client to offer with a LoRA (SPEC.md 9.3)
    presets: dict[str, SamplerPreset] = field(default_factory=dict, metadata=_c(items_max=64, max_len=64))
    loras: tuple[LoraInfo, ...] = ()  # 1.1: LoRA files for JobRequest.loras and prompt tags
    embeddings: tuple[str, ...] = ()  # 1.1: textual-inversion embeddings a prompt may name


@dataclass(frozen=True)
class Queued:
    TYPE: ClassVar[str] = "queued"
    job_id: str
    position: int  # jobs ahead of this one; sent again when it moves


@dataclass(frozen=True)
class Started:
    TYPE: ClassVar[str] = "started"
    job_id: str
    total: int  # steps (or tiles) this job will report
    seed: int | None = None


@dataclass(frozen=True)
class Progress:
    TYPE: ClassVar[str] = "progress"
    job_id: str
    step: int  # 1-based
    total: int
    stage: str = "denoise"  # "denoise", "upscale", "refine", "decode", "preprocess"


@dataclass(frozen=True)
class Done:
    TYPE: ClassVar[str] = "done"
    job_id: str
    results: int  # how many result frames preceded this message
    seeds: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # provenance: model, sampler, upscaler, seconds


@dataclass(frozen=True)
class Cancelled:
    TYPE: ClassVar[str] = "cancelled"
    job_id: str
    reason: str | None = None  # 1.1: absent = the client cancelled; CANCEL_SUPERSEDED (SPEC.md 9.11)


@dataclass(frozen=True)
class Error:
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    field: str | None = None
    job_id: str | None = None
    request_id: str | None = None  # 1.1: the query this error answers

    @classmethod
    def from_error(cls, err: ProtocolError, job_id: str | None = None, request_id: str | None = None) -> Error:
        """The message that reports ``err``; ``job_id`` and ``request_id`` override those the decoder found."""
        return cls(
            err.code.value,
            err.message,
            err.field,
            job_id if job_id is not None else err.job_id,
            request_id if request_id is not None else err.request_id,
        )


@dataclass(frozen=True)
class BlobsAnswer:
    TYPE: ClassVar[str] = "blobs"
    have: tuple[str, ...]
    missing: tuple[str, ...]
    request_id: str | None = None  # 1.1: the query's request_id


@dataclass(frozen=True)
class BlobStored:
    TYPE: ClassVar[str] = "blob_stored"
    hash: str
    width: int
    height: int


@dataclass(frozen=True)
class QueueAnswer:
    TYPE: ClassVar[str] = "queue"
    jobs: tuple[JobInfo, ...]
    request_id: str | None = None  # 1.1


@dataclass(frozen=True)
class ModelsAnswer:
    TYPE: ClassVar[str] = "models"
    models: tuple[ModelInfo, ...]
    upscalers: tuple[str, ...]
    samplers: tuple[str, ...]
    default_model: str = ""
    request_id: str | None = None  # 1.1


# ----------------------------------------------------------------------------- binary frame headers


@dataclass(frozen=True)
class BlobHeader:
    """Client -> server image upload. ``hash`` is sha256 of the payload bytes exactly as sent."""

    TYPE: ClassVar[str] = "blob"
    hash: str = field(metadata=_c(pattern=HASH_PATTERN))
    format: ImageFormat
    width: int = field(metadata=_c(min=1, max=MAX_SIDE))
    height: int = field(metadata=_c(min=1, max=MAX_SIDE))
    stride: int | None = field(default=None, metadata=_c(min=1, max=4 * MAX_SIDE))  # raw only; default tight
    # 1.1 patch upload (SPEC.md 8): the payload is ``rect``'s pixels over the stored blob ``base``, and
    # ``hash`` addresses the whole resulting image
    base: str | None = field(default=None, metadata=_c(pattern=HASH_PATTERN))
    rect: Rect | None = None


@dataclass(frozen=True)
class PreviewHeader:
    """Server -> client: the x0 estimate after ``step``, to be shown stretched over ``rect``."""

    TYPE: ClassVar[str] = "preview"
    job_id: str
    step: int
    total: int
    rect: Rect
    format: str
    width: int = field(metadata=_c(min=1, max=MAX_SIDE))  # of the encoded picture; may be smaller than rect
    height: int = field(metadata=_c(min=1, max=MAX_SIDE))
    index: int = field(default=0, metadata=_c(min=0))  # batch item


@dataclass(frozen=True)
class ResultHeader:
    """Server -> client: one finished image covering ``rect`` (the request's region)."""

    TYPE: ClassVar[str] = "result"
    job_id: str
    index: int = field(metadata=_c(min=0))
    rect: Rect
    format: str
    width: int = field(metadata=_c(min=1, max=MAX_SIDE))
    height: int = field(metadata=_c(min=1, max=MAX_SIDE))
    seed: int | None = None
    stride: int | None = field(default=None, metadata=_c(min=1, max=4 * MAX_SIDE))


# What each decoder can return besides a ProtocolError (codec.py); the tables below are built from these.
ClientMessage: TypeAlias = ClientHello | Submit | Cancel | QueryBlobs | QueryQueue | QueryModels
ServerMessage: TypeAlias = (
    ServerHello | Queued | Started | Progress | Done | Cancelled | Error | BlobsAnswer | BlobStored | QueueAnswer
    | ModelsAnswer
)
ServerFrameHeader: TypeAlias = PreviewHeader | ResultHeader

CLIENT_MESSAGES: dict[str, type[ClientMessage]] = {m.TYPE: m for m in get_args(ClientMessage)}
SERVER_MESSAGES: dict[str, type[ServerMessage]] = {m.TYPE: m for m in get_args(ServerMessage)}
CLIENT_FRAMES: dict[str, type[BlobHeader]] = {BlobHeader.TYPE: BlobHeader}
SERVER_FRAMES: dict[str, type[ServerFrameHeader]] = {m.TYPE: m for m in get_args(ServerFrameHeader)}
