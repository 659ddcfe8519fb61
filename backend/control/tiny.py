"""Built-in tiny ControlNets for the built-in ``tiny`` models: every code path of a real ControlNet, no download.

Made by diffusers' own ``ControlNetModel.from_unet`` from the tiny UNet (so the shapes fit it exactly), with
seeded random weights, like ``models/tiny.py``. They steer the picture (a control changes the result) but
have learnt nothing. ``save_tiny_controlnet`` writes one in the layouts users have, for tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import save_file

from ..models.tiny import _seeded, unet_config

TINY_MODES = ("scribble", "canny")  # the built-in ones: one per weightless preprocessor
EMBEDDING_CHANNELS = (8, 16, 16, 32)  # 3 stride-2 steps: the control image enters at 1/8, like the latent
ZERO_CONV_STD = 0.3  # large enough that a control visibly changes the tiny model's output


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
