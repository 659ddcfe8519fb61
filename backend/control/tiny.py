"""Built-in tiny ControlNets for the built-in ``tiny`` models: every code path of a real ControlNet, no download.

Made by diffusers' own ``ControlNetModel.from_unet`` from the tiny UNet (so the shapes fit it exactly), with
seeded random weights, like ``models/tiny.py``. They steer the picture (a control changes the result) but
have learnt nothing. ``save_tiny_controlnet`` writes one in the layouts users have, for tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel, T2IAdapter, UNet2DConditionModel
from safetensors.torch import save_file

from ..models.tiny import _seeded, unet_config

TINY_MODES = ("scribble", "canny", "tile")  # the built-in ones: the weightless preprocessors, and unblur's
EMBEDDING_CHANNELS = (8, 16, 16, 32)  # 3 stride-2 steps: the control image enters at 1/8, like the latent
ZERO_CONV_STD = 0.3  # large enough that a control visibly changes the tiny model's output
ADAPTER_GAIN = 2.0


def build_tiny_controlnet(*, xl: bool = False, seed: int = 0) -> ControlNetModel:
    """A ControlNet shaped for the tiny (SDXL-shaped when ``xl``) UNet, with seeded random weights."""
    with _seeded(1000 + seed):
        unet = UNet2DConditionModel(**unet_config(4, xl=xl))
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=EMBEDDING_CHANNELS)
        # from_unet zero-inits the convs that feed the UNet (training starts from "no effect"): give them one
        zero_convs = [controlnet.controlnet_cond_embedding.conv_out, *controlnet.controlnet_down_blocks,
                      controlnet.controlnet_mid_block]
        for conv in zero_convs:
            torch.nn.init.normal_(conv.weight, std=ZERO_CONV_STD)
    return controlnet.eval()


def save_tiny_controlnet(target: Path, *, layout: str = "folder", xl: bool = False, seed: int = 0) -> Path:
    """Write a tiny ControlNet as a diffusers folder (``layout="folder"``) or one ``.safetensors`` file
    with diffusers keys (``layout="file"``); returns the path written."""
    controlnet = build_tiny_controlnet(xl=xl, seed=seed)
    if layout == "folder":
        controlnet.save_pretrained(target)
        return target
    if layout == "file":
        save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, str(target))
        return target
    raise ValueError(f"layout must be 'folder' or 'file', not {layout!r}")


def build_tiny_adapter(*, xl: bool = False, seed: int = 0) -> T2IAdapter:
    """A tiny T2I-Adapter, seeded random weights, one feature map per down block of the UNet it fits.

    SDXL's adapter type (``xl``) fits the tiny SDXL UNet as it is. SD 1.5's adds its first feature map at 1/8,
    inside a down block with attention (SD 1.5's first three have it): it fits a tiny UNet whose down blocks
    all have attention (``attention_unet_config``), not the built-in tiny one, whose first block has none.
    """
    channels = list(unet_config(4)["block_out_channels"])
    with _seeded(2000 + seed):
        if xl:
            adapter = T2IAdapter(in_channels=3, channels=channels, num_res_blocks=1, downscale_factor=16,
                                 adapter_type="full_adapter_xl")
        else:
            adapter = T2IAdapter(in_channels=3, channels=channels, num_res_blocks=1, downscale_factor=8,
                                 adapter_type="full_adapter")
        for param in adapter.parameters():  # default init is timid at this size: make its features felt
            param.data.mul_(ADAPTER_GAIN)
    return adapter.eval()


def attention_unet_config() -> dict:
    """The tiny SD 1.5 UNet with attention in every down and up block: what the SD 1.5 tiny adapter fits."""
    return unet_config(4) | {"down_block_types": ("CrossAttnDownBlock2D",) * 2,
                             "up_block_types": ("CrossAttnUpBlock2D",) * 2}


def save_tiny_adapter(target: Path, *, xl: bool = False, seed: int = 0) -> Path:
    """Write a tiny T2I-Adapter as the diffusers folder published adapters come as."""
    build_tiny_adapter(xl=xl, seed=seed).save_pretrained(target)
    return target
