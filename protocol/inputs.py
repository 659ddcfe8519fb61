"""Named job inputs (protocol 1.1): ``JobRequest.inputs``, a list of ``{role, blob, ...parameters}``.

SPEC.md section 9.9 is normative. A 1.0 job carries its image and mask in the ``image`` and
``mask`` fields; a 1.1 job may carry them, and every other conditioning, as inputs. The helpers
here give one view of both forms (``job_inputs``, ``input_refs``) and turn a job back into the
1.0 form for a 1.0 server (``as_v1_0``). Standard library only; ``messages.py`` imports this
module, so it must not import ``messages``; the shared field limits come from ``fields.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .errors import ErrorCode, ProtocolError
from .fields import HASH_PATTERN, MAX_PROMPT_LEN, constraint

if TYPE_CHECKING:
    from .messages import JobRequest

__all__ = [
    "FREE_SIZE_ROLES",
    "MAX_INPUTS",
    "REFERENCE_MODES",
    "ROLES",
    "ROLE_PATTERN",
    "InputRef",
    "JobInput",
    "Role",
    "as_v1_0",
    "blob_keys",
    "check_inputs",
    "input_refs",
    "job_inputs",
]

ROLE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
MAX_INPUTS = 16


_c = constraint


@dataclass(frozen=True)
class JobInput:
    """One input of a job. Parameters a role does not take MUST be absent; absent ones take the role's default."""

    role: str = field(metadata=_c(pattern=ROLE_PATTERN))
    blob: str = field(metadata=_c(pattern=HASH_PATTERN))
    model: str | None = field(default=None, metadata=_c(max_len=256))
    mode: str | None = field(default=None, metadata=_c(max_len=32))
    preprocessor: str | None = field(default=None, metadata=_c(max_len=64))
    weight: float | None = field(default=None, metadata=_c(min=0.0, max=2.0))
    start: float | None = field(default=None, metadata=_c(min=0.0, max=1.0))
    end: float | None = field(default=None, metadata=_c(min=0.0, max=1.0))
    prompt: str | None = field(default=None, metadata=_c(max_len=MAX_PROMPT_LEN))
    negative_prompt: str | None = field(default=None, metadata=_c(max_len=MAX_PROMPT_LEN))

    def param(self, name: str) -> Any:
        """The parameter's value, or the role's default when it was left out."""
        value = getattr(self, name)
        return ROLES[self.role].params[name] if value is None else value


PARAMETERS = tuple(f.name for f in fields(JobInput) if f.name not in ("role", "blob"))


@dataclass(frozen=True)
class Role:
    """What a role means to the protocol. Which operations take it is ``operations.py``'s table."""

    name: str
    kind: Literal["image", "mask"]  # the blob holds colour pixels, or one channel (255 = applies)
    params: Mapping[str, Any] = field(default_factory=dict)  # parameters it takes -> default
    single: bool = True  # at most one input of this role per job
    since_minor: int = 1  # 0: a 1.0 job can carry it (the ``image`` / ``mask`` fields)


def _role(name: str, kind: Literal["image", "mask"], single: bool = True, since: int = 1, **params: Any) -> Role:
    return Role(name, kind, MappingProxyType(params), single, since)


# Order matters: operation checks walk the roles in this order, which decides the error a job with
# several faults gets (SPEC.md 9.5). region is specified for the next issues.
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        _role("image", "image", since=0),
        _role("mask", "mask", since=0),
        _role("control", "image", single=False, model="", mode="", preprocessor="", weight=1.0, start=0.0, end=1.0),
        _role("reference", "image", single=False, model="", mode="reference", weight=1.0, start=0.0, end=1.0),
        _role("region", "mask", single=False, prompt="", negative_prompt="", weight=1.0),
    )
}
V1_0_FIELDS = ("image", "mask")  # the roles 1.0 carries as JobRequest fields of the same name
REFERENCE_MODES = ("reference", "style", "composition")  # what a reference steers: all of it, style, layout
FREE_SIZE_ROLES = frozenset({"reference"})  # a picture of its own: any size within the blob limits (SPEC.md 9.9)


@dataclass(frozen=True)
class InputRef:
    """An input and where the job holds it: ``where`` is ``image``/``mask`` (1.0 fields) or ``inputs[i]``."""

    input: JobInput
    where: str

    @property
    def legacy(self) -> bool:
        return not self.where.startswith("inputs[")

    @property
    def blob_field(self) -> str:
        """Path of the blob address below ``job``, as ``check_blob`` and errors name it."""
        return self.where if self.legacy else f"{self.where}.blob"

    @property
    def role_field(self) -> str:
        return self.where if self.legacy else f"{self.where}.role"


def input_refs(job: JobRequest) -> tuple[InputRef, ...]:
    """Every input of ``job`` in order, whichever form it came in (1.0 fields become role inputs)."""
    if job.inputs:
        return tuple(InputRef(item, f"inputs[{i}]") for i, item in enumerate(job.inputs))
    refs = []
    for name in V1_0_FIELDS:
        blob = getattr(job, name)
        if blob is not None:
            refs.append(InputRef(JobInput(name, blob), name))
    return tuple(refs)


def job_inputs(job: JobRequest) -> dict[str, tuple[JobInput, ...]]:
    """role -> the job's inputs of that role, in job order, whichever form they came in."""
    out: dict[str, tuple[JobInput, ...]] = {}
    for ref in input_refs(job):
        out[ref.input.role] = (*out.get(ref.input.role, ()), ref.input)
    return out


def blob_keys(job: JobRequest) -> tuple[str, ...]:
    """Every blob address the job uses (each once, in job order)."""
    return tuple(dict.fromkeys(ref.input.blob for ref in input_refs(job)))


def _error(code: ErrorCode, message: str, field: str, job: JobRequest) -> ProtocolError:
    return ProtocolError(code, message, f"job.{field}", job.id)


def check_inputs(job: JobRequest) -> ProtocolError | None:
    """The rules of SPEC.md 9.9 that the field walk cannot express; the first fault, or None."""
    if not job.inputs:
        return None
    for name in V1_0_FIELDS:
        if getattr(job, name) is not None:
            return _error(ErrorCode.BAD_FIELD, f"give {name} as a field or as an input, not both", name, job)
    seen: set[str] = set()
    for i, item in enumerate(job.inputs):
        where = f"inputs[{i}]"
        role = ROLES.get(item.role)
        if role is None:
            return _error(ErrorCode.BAD_FIELD, f"must be one of {', '.join(ROLES)}", f"{where}.role", job)
        if role.single and item.role in seen:
            return _error(ErrorCode.BAD_FIELD, f"a job takes one {item.role} input", f"{where}.role", job)
        seen.add(item.role)
        for name in PARAMETERS:
            if getattr(item, name) is not None and name not in role.params:
                return _error(ErrorCode.BAD_FIELD, f"a {item.role} input takes no {name}", f"{where}.{name}", job)
        if item.role == "reference" and item.param("mode") not in REFERENCE_MODES:
            return _error(ErrorCode.BAD_FIELD, f"must be one of {', '.join(REFERENCE_MODES)}", f"{where}.mode", job)
        if "start" in role.params and item.param("end") <= item.param("start"):
            return _error(ErrorCode.BAD_FIELD, "end must be greater than start", f"{where}.end", job)
    return None


def as_v1_0(job: JobRequest) -> JobRequest | ProtocolError:
    """``job`` as a 1.0 server reads it: image and mask in their fields, no ``inputs``, ``mask_outward``, ``stream``,
    ``loras``, ``refiner``.

    A ProtocolError (``not_supported``, naming the input) when the job uses a role 1.0 cannot
    carry; the error of ``check_inputs`` when the job is not valid in the first place.
    """
    err = check_inputs(job)
    if err is not None:
        return err
    if job.mask_outward is not None:
        # 1.0 has no cap on the composite's reach: zero edges make the result's alpha the sent mask
        # itself, which keeps the cap (no pixel changes past the selection) at the cost of the soft blend
        job = replace(job, mask_outward=None, mask_grow=0, mask_feather=0, mask_blend=0)
    if job.stream is not None:  # 1.0 has no streams: the client cancels its previous live job itself
        job = replace(job, stream=None)
    if job.loras:
        return _error(ErrorCode.NOT_SUPPORTED, "a 1.0 server cannot apply LoRAs", "loras", job)
    if job.refiner is not None:
        return _error(ErrorCode.NOT_SUPPORTED, "a 1.0 server has no SDXL refiner", "refiner", job)
    job = replace(job, loras=None, refiner_at=None)
    if job.upscale is not None and job.upscale.unblur is not None:
        return _error(ErrorCode.NOT_SUPPORTED, "a 1.0 server cannot unblur (no tile ControlNet)", "upscale.unblur", job)
    if job.inputs is None:
        return job
    moved: dict[str, Any] = {"inputs": None}
    for ref in input_refs(job):
        if ROLES[ref.input.role].since_minor > 0:
            message = f"a 1.0 server cannot take {ref.input.role} inputs"
            return _error(ErrorCode.NOT_SUPPORTED, message, ref.role_field, job)
        moved[ref.input.role] = ref.input.blob
    return replace(job, **moved)
