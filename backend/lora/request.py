"""A job's LoRAs: ``job.loras`` plus the prompt's ``<lora:name:weight>`` tags (SPEC.md 9.12).

The tags are removed from the text before it is encoded (they mean nothing to the text encoder) and count
as if they were in ``job.loras``; a name in both counts once, with the list's weight. ``<lyco:...>`` (the old
A1111 LyCORIS extension's tag) means the same. Only the positive prompt's tags apply, as in A1111: a tag in
the negative prompt is left as text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError

TAG = re.compile(r"<(?:lora|lyco):([^>]*)>", re.IGNORECASE)
MAX_LORAS = 16  # job.loras' own limit, for the list and the tags together
MIN_WEIGHT, MAX_WEIGHT = -4.0, 4.0  # LoraRef.weight's limits, for tags too


@dataclass(frozen=True)
class NamedLora:
    name: str
    weight: float
    field: str  # where the job names it: "job.loras[0].name", or "job.prompt" for a tag


@dataclass(frozen=True)
class LoraRequest:
    prompt: str  # job.prompt without its tags
    loras: tuple[NamedLora, ...]


def split_tags(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]] | ProtocolError:
    """The prompt without its LoRA tags, and the tags' (name, weight) in order (the first of a name counts)."""
    found: list[tuple[str, float]] = []
    for match in TAG.finditer(prompt):
        parts = match.group(1).split(":")
        name = parts[0].strip()
        if not name or len(parts) > 2:
            message = f"{match.group(0)!r}: a LoRA tag is <lora:name> or <lora:name:weight>"
            return ProtocolError(ErrorCode.BAD_FIELD, message, "job.prompt")
        weight = 1.0
        if len(parts) == 2:
            try:
                weight = float(parts[1])
            except ValueError:
                return ProtocolError(ErrorCode.BAD_FIELD, f"{match.group(0)!r}: the weight is not a number",
                                     "job.prompt")
            if not math.isfinite(weight) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
                return ProtocolError(ErrorCode.BAD_FIELD, f"{match.group(0)!r}: the weight is outside "
                                     f"{MIN_WEIGHT:g}..{MAX_WEIGHT:g}", "job.prompt")
        if all(name != seen for seen, _ in found):
            found.append((name, weight))
    return TAG.sub("", prompt), tuple(found)


def lora_request(job: JobRequest) -> LoraRequest | ProtocolError:
    """The job's LoRAs in order (the list's, then the prompt's tags not in it) and its prompt without the tags."""
    split = split_tags(job.prompt)
    if isinstance(split, ProtocolError):
        return split
    prompt, tags = split
    listed = tuple(NamedLora(ref.name, float(ref.weight), f"job.loras[{i}].name")
                   for i, ref in enumerate(job.loras or ()))
    names = {lora.name for lora in listed}
    loras = listed + tuple(NamedLora(name, weight, "job.prompt") for name, weight in tags if name not in names)
    if len({lora.name for lora in listed}) != len(listed):
        first = next(lora for i, lora in enumerate(listed) if lora.name in {x.name for x in listed[:i]})
        return ProtocolError(ErrorCode.BAD_FIELD, f"LoRA {first.name!r} is listed twice", first.field)
    if len(loras) > MAX_LORAS:
        return ProtocolError(ErrorCode.BAD_FIELD, f"{len(loras)} LoRAs (job.loras and prompt tags together); "
                             f"at most {MAX_LORAS}", "job.prompt")
    return LoraRequest(prompt, loras)
