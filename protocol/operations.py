"""What each operation takes, as data (SPEC.md 9.1): input roles it needs and may have, fields it fixes.

``check_operation`` walks this table, so a new operation is one entry here (plus its name in
``messages.Operation`` and its SPEC.md section), not another branch in an if-chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ErrorCode, ProtocolError
from .inputs import ROLES, input_refs

if TYPE_CHECKING:
    from .messages import JobRequest

__all__ = ["OPERATIONS", "FieldRule", "OpSpec", "check_operation"]

# Conditioning roles every diffusion operation may take (a server that lacks one says not_supported).
CONDITIONING = frozenset({"control", "reference", "region"})


@dataclass(frozen=True)
class FieldRule:
    """``job.<field>`` must equal ``value`` for this operation, else bad_field with ``message``."""

    field: str
    value: Any
    message: str


@dataclass(frozen=True)
class OpSpec:
    name: str
    needs: frozenset[str] = frozenset()  # input roles it must have (missing_field)
    takes: frozenset[str] = frozenset()  # roles it may have; others are bad_field (``needs`` is added)
    fixed: tuple[FieldRule, ...] = ()  # checked in this order, after the roles
    refusals: dict[str, str] = field(default_factory=dict)  # role -> a better message when it is given
    single: frozenset[str] = frozenset()  # roles it takes at most once although ROLES allows several
    given: tuple[tuple[str, str], ...] = ()  # (role, parameter) that MUST be given, non-empty, on each such input

    def allows(self, role: str) -> bool:
        return role in self.needs or role in self.takes


NOT_UPSCALE = FieldRule("upscale", None, "upscale parameters only apply to op upscale")
OPERATIONS: dict[str, OpSpec] = {
    op.name: op
    for op in (
        OpSpec(
            "txt2img",
            takes=frozenset({"mask"}) | CONDITIONING,
            fixed=(FieldRule("strength", 1.0, "txt2img starts from noise: strength must be 1"), NOT_UPSCALE),
            refusals={"image": "txt2img takes no image (inpaint at strength 1 uses one)"},
        ),
        OpSpec("img2img", needs=frozenset({"image"}), takes=frozenset({"mask"}) | CONDITIONING, fixed=(NOT_UPSCALE,)),
        OpSpec("inpaint", needs=frozenset({"image", "mask"}), takes=CONDITIONING, fixed=(NOT_UPSCALE,)),
        OpSpec(
            "preprocess",
            needs=frozenset({"control"}),
            single=frozenset({"control"}),
            given=(("control", "preprocessor"),),
            fixed=(FieldRule("batch", 1, "preprocess makes one image"),
                   FieldRule("resolution", None, "preprocess works at the context's own size"), NOT_UPSCALE),
        ),
        OpSpec(
            "upscale",
            needs=frozenset({"image"}),
            fixed=(
                FieldRule("resolution", None, "upscale sets its output size with upscale.target"),
                FieldRule("batch", 1, "upscale makes one image"),
            ),
        ),
    )
}


def _error(code: ErrorCode, message: str, field: str, job: JobRequest) -> ProtocolError:
    return ProtocolError(code, message, f"job.{field}", job.id)


def check_operation(job: JobRequest) -> ProtocolError | None:
    """The operation's rules: per role (``ROLES`` order) missing or not allowed, then its fixed fields."""
    spec = OPERATIONS.get(job.op)
    if spec is None:
        return _error(ErrorCode.BAD_FIELD, f"must be one of {', '.join(OPERATIONS)}", "op", job)
    refs = input_refs(job)
    given: dict[str, str] = {}
    for ref in refs:
        given.setdefault(ref.input.role, ref.role_field)
    for role in ROLES:
        if role in spec.needs and role not in given:
            where = "inputs" if job.inputs else role  # a 1.0-form job names the field it lacks
            return _error(ErrorCode.MISSING_FIELD, f"{job.op} needs the {role} input", where, job)
        if role in given and not spec.allows(role):
            message = spec.refusals.get(role, f"{job.op} takes no {role}")
            return _error(ErrorCode.BAD_FIELD, message, given[role], job)
        of_role = [ref for ref in refs if ref.input.role == role]
        if role in spec.single and len(of_role) > 1:
            return _error(ErrorCode.BAD_FIELD, f"{job.op} takes one {role} input", of_role[1].role_field, job)
        for ref in of_role:
            for needed in (param for r, param in spec.given if r == role):
                if not ref.input.param(needed):
                    message = f"{job.op} needs the {role} input's {needed}"
                    return _error(ErrorCode.BAD_FIELD, message, f"{ref.where}.{needed}", job)
    for rule in spec.fixed:
        if getattr(job, rule.field) != rule.value:
            return _error(ErrorCode.BAD_FIELD, rule.message, rule.field, job)
    return None
