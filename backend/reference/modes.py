"""What a reference's ``mode`` and step span mean to diffusers' ``set_ip_adapter_scale``: pure functions.

``reference``: the adapter acts in every cross-attention layer (content and style). ``style`` and ``composition``
are InstantStyle (Wang et al. 2024): in SDXL the style lives in ``up_blocks.0.attentions.1`` and the layout in
``down_blocks.2.attentions.1``, i.e. the lowest-resolution cross-attention block on the way up (its middle
attention) and on the way down (its last). Rather than a table per model, the blocks are found in the UNet's
own config by that description, which gives InstantStyle's SDXL dicts exactly, and for SD 1.5 the blocks at the
same (lowest, 1/32) resolution: style ``up.block_1`` middle, composition ``down.block_2`` last (SD 1.5 has one
more down and up block than SDXL, so the indices shift by one on the way up). The tiny UNets get the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MODES = ("reference", "style", "composition")

ScaleConfig = float | dict[str, Any]  # one adapter's argument of set_ip_adapter_scale


def _cross_blocks(types: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(types) if name.startswith("CrossAttn")]


def block_scales(mode: str, unet_config: Mapping[str, Any], weight: float) -> ScaleConfig:
    """The ``set_ip_adapter_scale`` config of one adapter in ``mode`` at ``weight`` for a UNet of ``unet_config``."""
    if mode == "reference":
        return float(weight)
    layers = int(unet_config["layers_per_block"])
    if mode == "style":
        block = _cross_blocks(unet_config["up_block_types"])[0]  # up blocks run from the lowest resolution
        attentions = [0.0] * (layers + 1)  # an up block has one attention more than a down block
        attentions[len(attentions) // 2] = float(weight)
        return {"up": {f"block_{block}": attentions}}
    if mode == "composition":
        block = _cross_blocks(unet_config["down_block_types"])[-1]  # down blocks end at the lowest resolution
        attentions = [0.0] * layers
        attentions[-1] = float(weight)
        return {"down": {f"block_{block}": attentions}}
    raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def active(step: int, steps: int, start: float, end: float) -> bool:
    """Whether a reference acts in ``step`` of ``steps`` for its span: diffusers' rule for ControlNets
    (``control_guidance_start`` / ``_end``), so a reference and a control with the same span agree."""
    return not (step / steps < start or (step + 1) / steps > end)


def scales_at(step: int, steps: int, configs: Sequence[ScaleConfig], spans: Sequence[tuple[float, float]]
              ) -> list[ScaleConfig]:
    """Every adapter's scale config for ``step``: its own config inside its span, 0 outside."""
    return [config if active(step, steps, *span) else 0.0 for config, span in zip(configs, spans, strict=True)]
