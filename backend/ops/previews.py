"""Step previews: capture the x0 estimate of each step and turn it into a picture of the job's region.

diffusers' step callback only sees x_t (noisy); x0 (the predicted clean latent) gives a much cleaner preview.
Schedulers hand x0 out in different ways, so :class:`X0Capture` wraps ``scheduler.step`` and takes the first
of: ``pred_original_sample``; ``model_outputs[-1]`` of data-predicting multistep solvers (DPM++, UniPC);
x0 computed from the model output and ``alphas_cumprod`` (or the sigma of a flow-matching scheduler); x_t
itself as a last resort. Flux's packed latents are unpacked before they are decoded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from latentbrush.protocol.geometry import Rect, Size
from PIL import Image

# ComfyUI's latent_rgb_factors (rows: latent channels; cols: R, G, B), applied to scaled latents; out in [-1, 1].
LATENT_RGB: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, float, float]]] = {
    "sd15": (
        ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
        (0.0, 0.0, 0.0),
    ),
    "sdxl": (
        ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
        (0.1084, -0.0175, -0.0011),
    ),
    # 16-channel flow-matching latents: ComfyUI's comfy/latent_formats.py (classes SD3 and Flux), for latents
    # scaled as the diffusers pipelines scale them ((latent - shift_factor) * scaling_factor)
    "sd3": (
        ((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
         (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
         (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
         (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293),
         (-0.1448, -0.1463, -0.1189)),
        (0.2394, 0.2135, 0.1925),
    ),
    "flux": (
        ((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
         (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
         (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
         (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499),
         (-0.1262, -0.0982, -0.0778)),
        (-0.0329, -0.0718, -0.0851),
    ),
}
PACKED = 2  # Flux packs 2x2 latent patches into one token: (batch, (h/2)*(w/2), channels*4)


def _to_uint8(rgb_m11: torch.Tensor) -> np.ndarray:
    return ((rgb_m11.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


class LinearDecoder:
    """Latent -> RGB by a 4x3 matrix at latent resolution (1/8 of the image side); well under 1 ms a step."""

    def __init__(self, family: str) -> None:
        factors, bias = LATENT_RGB[family]
        self.factors = torch.tensor(factors, dtype=torch.float32)
        self.bias = torch.tensor(bias, dtype=torch.float32)

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        latent = x0[0].float()
        rgb = torch.einsum("chw,cr->hwr", latent, self.factors.to(latent.device)) + self.bias.to(latent.device)
        return _to_uint8(rgb)


class TaesdDecoder:
    """Latent -> RGB with TAESD (AutoencoderTiny) at full resolution; it takes scaled latents as they are."""

    def __init__(self, taesd: torch.nn.Module) -> None:
        self.taesd = taesd

    @torch.inference_mode()
    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        param = next(self.taesd.parameters())
        image = self.taesd.decode(x0[:1].to(param.device, param.dtype)).sample[0]
        return _to_uint8(image.float().permute(1, 2, 0))


LatentDecoder = Callable[[torch.Tensor], np.ndarray]


def packed_grid(tokens: int, aspect: float) -> tuple[int, int]:
    """(rows, columns) of a packed latent of ``tokens`` tokens: the factor pair closest to ``aspect`` (w / h).
    The processing size keeps the context's aspect ratio, so the nearest pair is the one the pipeline used."""
    pairs = [(rows, tokens // rows) for rows in range(1, tokens + 1) if tokens % rows == 0]
    return min(pairs, key=lambda p: abs(np.log(p[1] / p[0]) - np.log(aspect)))


def unpack_latents(x0: torch.Tensor, aspect: float) -> torch.Tensor:
    """Flux's packed (batch, tokens, channels * 4) latent as (batch, channels, h, w), as its pipeline's
    ``_unpack_latents`` does; an already spatial latent is returned as it is."""
    if x0.ndim != 3:
        return x0
    batch, tokens, packed = x0.shape
    rows, cols = packed_grid(tokens, aspect)
    channels = packed // (PACKED * PACKED)
    x = x0.view(batch, rows, cols, channels, PACKED, PACKED).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, channels, rows * PACKED, cols * PACKED)
NOISED_SECOND = ("TCDScheduler",)  # step() returns (prev_sample, pred_noised_sample)
FLOW_MATCH = "FlowMatch"  # class-name prefix of diffusers' flow-matching schedulers


def x0_from_model_output(scheduler: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor):
    """x0 from an alphas_cumprod-parametrised scheduler's raw model output, or None if it has no such table.
    Flow-matching schedulers (SD3, Flux) predict the velocity v = noise - x0 at sigma = t / num_train_timesteps,
    their timesteps being sigmas scaled so: x0 = x_t - sigma * v."""
    if type(scheduler).__name__.startswith(FLOW_MATCH):
        sigma = float(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
        sigma /= scheduler.config.get("num_train_timesteps", 1000)
        return (sample.float() - sigma * model_output.float()).to(sample.dtype)
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None or getattr(scheduler, "sigmas", None) is not None:
        return None  # sigma-space schedulers scale the input; they report x0 themselves
    t = int(timestep.item() if isinstance(timestep, torch.Tensor) else timestep)
    a = alphas[max(0, min(t, len(alphas) - 1))].to(sample.device, torch.float32)
    x_t, out = sample.float(), model_output.float()
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        x0 = (x_t - (1 - a).sqrt() * out) / a.sqrt()
    elif kind == "v_prediction":
        x0 = a.sqrt() * x_t - (1 - a).sqrt() * out
    elif kind == "sample":
        x0 = out
    else:
        return None
    return x0.to(sample.dtype)


class X0Capture:
    """Wraps one scheduler instance's ``step`` so the latest x0 estimate is kept in ``latest``.

    Use as a context manager; the wrapper is an instance attribute and is removed on exit.
    """

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.latest: torch.Tensor | None = None
        self.source = ""  # how the last x0 was obtained: "scheduler", "solver", "computed" or "x_t"

    def _step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any):
        s = self.scheduler
        out = type(s).step(s, model_output, timestep, sample, *args, **kwargs)
        x0 = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, "pred_original_sample", None)
        if type(s).__name__ in NOISED_SECOND:
            x0 = None  # its second output is a noised sample, not x0: computed from the model output below
        source = "scheduler"
        outputs = getattr(s, "model_outputs", None)
        if x0 is None and outputs and outputs[-1] is not None and self._solver_keeps_x0():
            x0, source = outputs[-1], "solver"
        if x0 is None:
            x0, source = x0_from_model_output(s, model_output, timestep, sample), "computed"
        if x0 is None:
            x0, source = (out[0] if isinstance(out, tuple) else out.prev_sample), "x_t"
        self.latest, self.source = x0.detach(), source
        return out

    def _solver_keeps_x0(self) -> bool:
        config = self.scheduler.config
        return config.get("algorithm_type", "") in ("dpmsolver++", "sde-dpmsolver++") or bool(
            config.get("predict_x0", False)
        )

    def __enter__(self) -> X0Capture:
        # wraps(): the pipeline reads step()'s signature to decide whether to pass ``generator``;
        # a bare (*args, **kwargs) wrapper hides it, and ancestral samplers then draw from the global RNG.
        @functools.wraps(self.scheduler.step)
        def step(*args: Any, **kwargs: Any) -> Any:
            return self._step(*args, **kwargs)

        self.scheduler.step = step
        return self

    def __exit__(self, *exc: object) -> None:
        del self.scheduler.step


class RegionPreview:
    """Turns an x0 latent of the whole processed context into a preview picture of ``region``.

    The picture has the region's own size (shrunk to fit ``max_side``), whatever the decoder's resolution:
    TAESD's full-resolution decode is resampled to it, the linear projection's 1/8-scale image is upscaled
    smoothly (bicubic), so the client never stretches a tiny blocky picture. The region is cut out with a
    fractional box (exact however the context was scaled).

    With a composite ``alpha`` (a masked job) the preview looks like the result will: with ``clip`` it is
    RGBA whose alpha is the composite alpha (exactly, at the region's size) and whose RGB is the original
    where alpha is 0; without (a format with no alpha) it is the prediction blended over the original.
    """

    def __init__(
        self,
        decoder: LatentDecoder,
        context: Rect,
        region: Rect,
        max_side: int,
        original_rgb: np.ndarray | None = None,
        alpha: np.ndarray | None = None,
        *,
        clip: bool = False,
    ) -> None:
        self.decoder, self.context, self.region, self.max_side = decoder, context, region, max_side
        self.original_rgb, self.alpha, self.clip = original_rgb, alpha, clip
        self.size = preview_size(region, max_side)
        self._backdrop: tuple[np.ndarray, np.ndarray] | None = None

    def _region_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        sx, sy = width / self.context.width, height / self.context.height
        x, y = self.region.x - self.context.x, self.region.y - self.context.y
        return (x * sx, y * sy, (x + self.region.width) * sx, (y + self.region.height) * sy)

    def _to_preview(self, array: np.ndarray, resample: Image.Resampling) -> np.ndarray:
        """The region of a context-covering ``array`` (any resolution) at the preview size."""
        height, width = array.shape[:2]
        if (width, height) == (self.context.width, self.context.height) and self.size == self.region.size:
            x, y = self.region.x - self.context.x, self.region.y - self.context.y
            return array[y : y + self.region.height, x : x + self.region.width]  # exact: no resampling
        box = self._region_box(width, height)
        return np.asarray(Image.fromarray(array).resize((self.size.width, self.size.height), resample, box=box))

    def _backdrop_for(self, full_alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The original pixels (black for txt2img into a selection: nothing to show outside it) and the
        composite alpha at preview size, computed once: they are the same every step."""
        if self._backdrop is None:
            alpha = self._to_preview(full_alpha, Image.Resampling.BILINEAR)
            if self.original_rgb is None:
                rgb = np.zeros((*alpha.shape, 3), np.uint8)
            else:
                rgb = self._to_preview(self.original_rgb, Image.Resampling.BILINEAR)
            self._backdrop = (rgb, alpha)
        return self._backdrop

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        x0 = unpack_latents(x0, self.context.width / self.context.height)
        preview = self._to_preview(self.decoder(x0), Image.Resampling.BICUBIC)
        if self.alpha is None:
            return np.ascontiguousarray(preview)
        original, alpha = self._backdrop_for(self.alpha)
        if self.clip:
            rgb = np.where((alpha > 0)[..., None], preview, original)
            return np.dstack([rgb, alpha])
        weight = alpha.astype(np.float32)[..., None] / 255.0
        return np.rint(original + (preview.astype(np.float32) - original) * weight).astype(np.uint8)


def preview_size(region: Rect, max_side: int) -> Size:
    """The preview picture's size: the region's, shrunk (never grown) to fit ``max_side``."""
    shrink = min(1.0, max_side / max(region.width, region.height))
    return Size(max(1, round(region.width * shrink)), max(1, round(region.height * shrink)))
