"""TAESD (diffusers' AutoencoderTiny): where its weights are, and loading them for sharp step previews.

Found without any flag in the models folder (``ModelFolders.taesd``: the folder itself and ``vae_approx/``,
plus reused apps' preview-decoder and VAE folders), in the layouts people already have:

- a diffusers folder (``config.json`` + weights, as ``madebyollin/taesd`` / ``taesdxl`` / ``taesd3`` / ``taef1``
  ship): ``taesd/`` for SD 1.5, ``taesdxl/`` for SDXL, ``taesd3/`` for SD3, ``taef1/`` for Flux, at the top of
  the models folder or in ``vae_approx/``;
- ComfyUI's decoder-only files ``vae_approx/taesd_decoder.safetensors`` / ``taesdxl_decoder.safetensors``
  (madebyollin's original layout: an ``nn.Sequential`` whose index 0 is a clamp, so diffusers' decoder layer
  ``i`` is file layer ``i + 1``, as diffusers' own conversion script maps them).

``--taesd DIR`` is looked at first (the folder itself for SD 1.5, or the same names inside it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderTiny

log = logging.getLogger(__name__)

# latent family -> folder name / ComfyUI file prefix (madebyollin/taesd, taesdxl, taesd3, taef1)
TAESD_NAMES = {"sd15": "taesd", "sdxl": "taesdxl", "sd3": "taesd3", "flux": "taef1"}
DECODER_SUFFIX = "_decoder.safetensors"
DIFFUSERS = "diffusers"  # TaesdSource.kind: a folder AutoencoderTiny.from_pretrained reads
DECODER_FILE = "decoder"  # TaesdSource.kind: a decoder-only state dict in the original layout


@dataclass(frozen=True)
class TaesdSource:
    path: Path
    kind: str  # DIFFUSERS or DECODER_FILE


def find_taesd(family: str, folders: tuple[Path, ...] = (), taesd_dir: Path | None = None) -> TaesdSource | None:
    """The first TAESD for ``family`` in ``taesd_dir`` (if given), then ``folders`` (``ModelFolders.taesd``);
    None if there is none."""
    name = TAESD_NAMES.get(family)
    if name is None:
        return None
    roots = [taesd_dir] if taesd_dir is not None else []
    roots += folders
    for root in roots:
        if (root / name / "config.json").is_file():
            return TaesdSource(root / name, DIFFUSERS)
        if (root / (name + DECODER_SUFFIX)).is_file():
            return TaesdSource(root / (name + DECODER_SUFFIX), DECODER_FILE)
        if root == taesd_dir and family == "sd15" and (root / "config.json").is_file():
            return TaesdSource(root, DIFFUSERS)  # --taesd naming the taesd folder itself
    return None


def decoder_state_dict(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ComfyUI / madebyollin decoder state dict (``"3.conv.0.weight"``) in diffusers' names
    (``"layers.2.conv.0.weight"`` of ``AutoencoderTiny.decoder``)."""
    renamed = {}
    for key, value in original.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < 1:
            raise ValueError(f"{key!r} is not a TAESD decoder weight")
        renamed[f"layers.{int(index) - 1}.{rest}"] = value
    return renamed


def from_decoder_file(path: Path) -> AutoencoderTiny:
    """An AutoencoderTiny whose decoder holds ``path``'s weights (its encoder is unused for previews).

    The file carries no config: the channel width and latent channels are read off its first convolution;
    the block counts are TAESD's.
    """
    from safetensors.torch import load_file

    weights = decoder_state_dict(load_file(str(path)))
    first = weights["layers.0.weight"]  # Conv2d(latent_channels, width, 3)
    width, latent_channels = int(first.shape[0]), int(first.shape[1])
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the global RNG as it was
        taesd = AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(width,) * 4,
                                decoder_block_out_channels=(width,) * 4)
    taesd.decoder.load_state_dict(weights, strict=True)
    return taesd


def load_taesd_source(source: TaesdSource, device: torch.device, dtype: torch.dtype) -> AutoencoderTiny | None:
    """The TAESD at ``source`` on ``device``, or None (logged) when it cannot be read: previews then fall back
    to the linear projection rather than failing jobs."""
    try:
        if source.kind == DIFFUSERS:
            taesd = AutoencoderTiny.from_pretrained(source.path, local_files_only=True)
        else:
            taesd = from_decoder_file(source.path)
    except Exception as exc:  # a truncated or foreign file must not break jobs: previews go linear
        log.warning("TAESD at %s could not be loaded (%s); previews use the linear projection", source.path, exc)
        return None
    log.info("previews: TAESD from %s", source.path)
    return taesd.to(device, dtype).eval()
