"""Step previews: capture the x0 estimate of each step and turn it into a small RGB image of the job's region.

diffusers' step callback only sees x_t (noisy); x0 (the predicted clean latent) gives a much cleaner preview.
Schedulers hand x0 out in different ways, so :class:`X0Capture` wraps ``scheduler.step`` and takes the first
of: ``pred_original_sample``; ``model_outputs[-1]`` of data-predicting multistep solvers (DPM++, UniPC);
x0 computed from the model output and ``alphas_cumprod``; x_t itself as a last resort.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from latentbrush.protocol import Rect
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
}


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


def x0_from_model_output(scheduler: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor):
    """x0 from an alphas_cumprod-parametrised scheduler's raw model output, or None if it has no such table."""
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
    """Turns an x0 latent of the whole processed context into a preview of ``region``.

    The decoded image covers ``context``; the region is cut out with a fractional box (exact however the
    context was scaled). Where a composite mask is given, the preview is blended over the original pixels
    so the painter sees the new content in place, not a rectangle of noise over the untouched canvas.
    """

    def __init__(
        self,
        decoder: LatentDecoder,
        context: Rect,
        region: Rect,
        max_side: int,
        original_rgb: np.ndarray | None = None,
        alpha: np.ndarray | None = None,
    ) -> None:
        self.decoder, self.context, self.region, self.max_side = decoder, context, region, max_side
        self.original_rgb, self.alpha = original_rgb, alpha
        self._backdrop: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    def _region_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        sx, sy = width / self.context.width, height / self.context.height
        x, y = self.region.x - self.context.x, self.region.y - self.context.y
        return (x * sx, y * sy, (x + self.region.width) * sx, (y + self.region.height) * sy)

    def _out_size(self, width: int, height: int) -> tuple[int, int]:
        w = max(1, round(self.region.width * width / self.context.width))
        h = max(1, round(self.region.height * height / self.context.height))
        shrink = min(1.0, self.max_side / max(w, h))
        return max(1, round(w * shrink)), max(1, round(h * shrink))

    def _backdrop_for(
        self, size: tuple[int, int], original_rgb: np.ndarray, full_alpha: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The original pixels and alpha at preview size, computed once per size."""
        if self._backdrop is None or self._backdrop[0] != size:
            box = self._region_box(self.context.width, self.context.height)
            rgb = np.asarray(Image.fromarray(original_rgb).resize(size, Image.Resampling.BILINEAR, box=box))
            alpha = np.asarray(Image.fromarray(full_alpha).resize(size, Image.Resampling.BILINEAR, box=box))
            self._backdrop = (size, rgb.astype(np.float32), alpha.astype(np.float32)[..., None] / 255.0)
        return self._backdrop[1], self._backdrop[2]

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        decoded = self.decoder(x0)
        height, width = decoded.shape[:2]
        size = self._out_size(width, height)
        box = self._region_box(width, height)
        preview = np.asarray(Image.fromarray(decoded).resize(size, Image.Resampling.BILINEAR, box=box))
        if self.original_rgb is None or self.alpha is None:
            return preview
        rgb, alpha = self._backdrop_for(size, self.original_rgb, self.alpha)
        return np.rint(rgb + (preview.astype(np.float32) - rgb) * alpha).astype(np.uint8)
