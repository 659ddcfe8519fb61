"""A job's ``region`` inputs (SPEC.md 9.14) as region prompts, and their text embeddings for one pipeline.

Each region's prompt is followed by the job's prompt (", " between), so the style words a painter puts in the
main prompt hold in every region; the job's prompt alone is the background's, wherever no region reaches.
A region's negative prompt, when it has one, replaces the job's negative there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode

from ..events import EngineError
from ..ops.masks import resize_mask
from ..ops.prompt_cache import PROMPTS, PromptKey
from .attention import RegionText


@dataclass(frozen=True)
class RegionPrompt:
    mask: np.ndarray  # uint8 at the processing size
    prompt: str  # the region's prompt with the job's after it
    negative_prompt: str  # "" = the job's negative prompt
    weight: float
    own_prompt: str  # as the job wrote it, for the job info


def region_prompts(items: Sequence[Any], job_prompt: str, width: int, height: int) -> tuple[RegionPrompt, ...]:
    """``items`` are a job's region ``InputPixels`` (mask pixels at the context's size) in job order."""
    out = []
    for item in items:
        own = str(item.param("prompt")).strip()
        if not own:
            where = item.field.rsplit(".", 1)[0]
            raise EngineError(ErrorCode.BAD_FIELD, "a region needs a prompt of its own", f"{where}.prompt")
        prompt = f"{own}, {job_prompt}" if job_prompt.strip() else own
        out.append(RegionPrompt(resize_mask(item.pixels, width, height), prompt,
                                str(item.param("negative_prompt")), float(item.param("weight")), own))
    return tuple(out)


def region_info(regions: Sequence[RegionPrompt]) -> list[dict[str, Any]]:
    """What the job info says of each region: its prompt, weight and the share of the picture it covers."""
    return [{"prompt": r.own_prompt, "weight": r.weight, "negative": bool(r.negative_prompt),
             "coverage": round(float((r.mask > 0).mean()), 4)} for r in regions]


def region_texts(pipe: Any, model: str, regions: Sequence[RegionPrompt], guidance: bool) -> tuple[RegionText, ...]:
    """Each region's text embeddings from ``pipe``'s own text encoders (through the prompt cache)."""
    if getattr(pipe, "unet", None) is None:
        raise EngineError(ErrorCode.NOT_SUPPORTED, "regions work with SD 1.5 and SDXL models", "job.inputs")
    return tuple(
        RegionText(r.mask, r.weight, _embeds(pipe, model, r.prompt),
                   _embeds(pipe, model, r.negative_prompt) if guidance and r.negative_prompt else None)
        for r in regions
    )


def _embeds(pipe: Any, model: str, text: str) -> Any:
    args = PROMPTS.prompt_args(pipe, PromptKey(model, text, None, False))
    if "prompt_embeds" not in args:  # a pipeline that encodes its own text (T2I-Adapter): no way in
        raise EngineError(ErrorCode.NOT_SUPPORTED, "regions do not work with this pipeline (T2I-Adapters)",
                          "job.inputs")
    return args["prompt_embeds"]
