"""What an upscale job will do, worked out before any pixel moves (pure functions).

Output size: the region crop is scaled by ``UpscaleParams.scale`` (each side rounded half up,
at least 1: SPEC's rule, the protocol's ``scaled_size``, so the engine's image is exactly the
result rectangle ``upscale_rect`` announces), unless ``UpscaleParams.target`` gives the exact size.

Model passes: a model of scale ``s`` runs once when the needed factor is at most ``s`` (also when
it is below 1: the model output is then Lanczos-reduced, which is sharper than resizing the
source). A larger factor needs more passes (a 4x model for 8x runs twice, a 2x model for 8x three
times). Before every pass but the first, the image is Lanczos-reduced to ceil(target / s) if it is
larger, so the last pass lands just above the target instead of far beyond it (4x then 4x for 6x
would otherwise compute a 16x image). A final Lanczos resize gives the exact target size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from latentbrush.protocol import Rect, Size, UpscaleParams
from latentbrush.protocol.geometry import scaled_size


class PassPlan(NamedTuple):
    """One model pass: the input is resized to ``input`` first (if it differs), then scaled by ``scale``."""

    input: Size
    scale: int

    @property
    def output(self) -> Size:
        return Size(self.input.width * self.scale, self.input.height * self.scale)


def output_size(region: Rect | Size, params: UpscaleParams) -> Size:
    """Exact size of the upscaled result of ``region`` (see module docstring)."""
    if params.target is not None:
        return Size(params.target.width, params.target.height)
    return scaled_size(region, params.scale)


def model_passes(source: Size, target: Size, model_scale: int) -> tuple[PassPlan, ...]:
    """The model passes that take ``source`` to at least ``target`` (before the final resize)."""
    if model_scale < 1:
        raise ValueError(f"model scale must be >= 1, not {model_scale}")
    factor = max(target.width / source.width, target.height / source.height)
    if model_scale == 1 or factor <= model_scale:
        return (PassPlan(source, model_scale),)
    count = math.ceil(math.log(factor) / math.log(model_scale) - 1e-9)
    last_input = Size(math.ceil(target.width / model_scale), math.ceil(target.height / model_scale))
    passes = [PassPlan(source, model_scale)]
    for _ in range(count - 1):
        current = passes[-1].output
        shrunk = Size(min(current.width, last_input.width), min(current.height, last_input.height))
        passes.append(PassPlan(shrunk, model_scale))
    return tuple(passes)
