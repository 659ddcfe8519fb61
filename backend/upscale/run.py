"""``run_upscale``: the engine's entry point for ``job.op == "upscale"``.

Result: the ``job.region`` crop of ``image`` (which holds ``job.context``) upscaled to
``plan.output_size`` (region x scale, or ``UpscaleParams.target`` exactly). ``images[0]`` is
RGBA of that size: RGB from the model (or Lanczos), alpha Lanczos-resized, or 255 everywhere if
the region is opaque. A translucent region is upscaled premultiplied and divided back, so colour
stored under transparent pixels does not fringe the visible edges. The plugin places it over the
region scaled by the same factor.

Steps reported (``events.started(total, seed)``, then ``progress(step, total, stage)`` and one
preview per step): every top-level model tile of every pass ("upscale"; a Lanczos-only job is
one step), then every refine call ("refine"). Previews show the whole output, shrunk to
``job.preview_max_side``, stretched over ``upscale_rect(job)`` in the upscaled canvas, where the result
goes; none when ``job.preview_format`` is "none". The seed is reported only when the refine pass runs.
"""

from __future__ import annotations

import time

import numpy as np
from latentbrush.protocol import PREVIEW_NONE, ErrorCode, JobRequest, Rect, Size, UpscaleParams, upscale_rect

from ..events import EngineError, JobCancelled, JobEvents, JobOutput, RefineFn
from ..ops.steps import StepReporter
from .model_upscale import ModelTiler, lanczos_resize, upscale_with_model
from .plan import model_passes, output_size
from .preview_canvas import PreviewCanvas, to_uint8
from .refine import refine_image
from .refine_plan import refine_steps
from .registry import LANCZOS, UpscalerRegistry


def region_crop(job: JobRequest, image: np.ndarray) -> np.ndarray:
    """The ``job.region`` part of ``image`` (H x W x 4 uint8 of ``job.context``)."""
    context = job.context or job.region
    if image.dtype != np.uint8 or image.shape != (context.height, context.width, 4):
        raise EngineError(
            ErrorCode.SIZE_MISMATCH,
            f"image is {image.shape} {image.dtype}, expected ({context.height}, {context.width}, 4) uint8",
            "job.image",
        )
    x, y = job.region.x - context.x, job.region.y - context.y
    return image[y : y + job.region.height, x : x + job.region.width]


def _step(reporter: StepReporter, canvas: PreviewCanvas | None, stage: str, pixels: np.ndarray, box: Rect,
          space: Size) -> None:
    """One step finished; ``pixels`` cover ``box`` of an image of size ``space`` (shown on the preview canvas)."""
    rgb = None
    if canvas is not None:
        canvas.paste(pixels, box, space)
        rgb = canvas.frame()
    reporter.step(stage, rgb)


def upscale_alpha(alpha: np.ndarray, target: Size) -> np.ndarray:
    """Lanczos-resized alpha in [0, 1] (H x W x 1 float32); an opaque region stays exactly opaque."""
    if int(alpha.min()) == 255:
        return np.ones((target.height, target.width, 1), dtype=np.float32)
    return np.clip(lanczos_resize(alpha[..., None].astype(np.float32) / 255.0, target), 0.0, 1.0)


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour over alpha where anything is visible; fully transparent pixels get black."""
    visible = alpha > np.float32(0.5 / 255.0)
    out = np.divide(rgb, alpha, out=np.zeros_like(rgb), where=visible)
    return np.clip(out, 0.0, 1.0, out=out)


def run_upscale(
    job: JobRequest,
    image: np.ndarray,
    events: JobEvents,
    *,
    upscalers: UpscalerRegistry,
    refine: RefineFn | None,
    seed: int | None = None,
    max_pixels: int | None = None,
) -> JobOutput:
    """Upscales ``job.region`` of ``image`` (see module docstring); blocking, on the worker thread.

    ``seed``: the seed the engine bound into ``refine`` (defaults to ``job.seed``); reported only when the
    refine pass runs (an upscale without one uses no seed).
    ``max_pixels``: refuse outputs larger than this (TOO_LARGE naming the scale or target field).
    Everything that can be refused is checked before ``events.started``.
    """
    clock = time.perf_counter()
    params = job.upscale or UpscaleParams()
    seed = job.seed if seed is None else seed
    rgba = region_crop(job, image)
    source = Size(job.region.width, job.region.height)
    target = output_size(source, params)
    if max_pixels is not None and target.width * target.height > max_pixels:
        where = "job.upscale.target" if params.target is not None else "job.upscale.scale"
        raise EngineError(ErrorCode.TOO_LARGE, f"output {target.width}x{target.height} is over {max_pixels} px", where)
    if params.refine and refine is None:
        raise EngineError(ErrorCode.NOT_SUPPORTED, "refining needs a diffusion model", "job.upscale.refine")
    name = upscalers.resolve(params.upscaler)
    model = None if name == LANCZOS else upscalers.load(name)
    passes = model_passes(source, target, int(model.scale)) if model is not None else ()
    tiler = ModelTiler(model, params.tile, params.overlap, events.cancel) if model is not None else None
    upscale_steps = sum(tiler.grid(p.input.width, p.input.height).count for p in passes) if tiler else 1
    steps = refine_steps(target, params) if params.refine and refine is not None else ()
    canvas = None if job.preview_format == PREVIEW_NONE else PreviewCanvas(rgba[..., :3], target, job.preview_max_side)
    reporter = StepReporter(events, upscale_steps + len(steps), upscale_rect(job))
    seed = seed if steps else None  # no refine pass, no seed: nothing random happens (SPEC.md 7.3)
    events.started(reporter.total, seed)

    whole = Rect.of(target)
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    alpha = upscale_alpha(rgba[..., 3], target)
    translucent = int(rgba[..., 3].min()) < 255
    if translucent:  # premultiplied, so the colour hidden under transparent pixels cannot fringe visible edges
        rgb *= rgba[..., 3:4].astype(np.float32) / np.float32(255.0)
    if tiler is not None:
        rgb = upscale_with_model(
            rgb, passes, tiler,
            lambda i, _n, _c, box, tile: _step(reporter, canvas, "upscale", tile, box, passes[i].output),
        )
    if events.cancel.is_set():
        raise JobCancelled()
    rgb = lanczos_resize(rgb, target)
    out = to_uint8(unpremultiply(rgb, alpha) if translucent else rgb)
    del rgb
    if tiler is None:
        _step(reporter, canvas, "upscale", out, whole, target)
    elif canvas is not None:  # tiles were pasted unblended; the refine previews build on the real result
        canvas.paste(out, whole, target)
    if steps and refine is not None:

        def on_step(_number: int, _count: int, box: Rect, crop: np.ndarray) -> None:
            _step(reporter, canvas, "refine", crop, box, target)

        out = refine_image(out, steps, refine, params.refine_mask_blur, events.cancel, on_step)

    result = np.empty((target.height, target.width, 4), dtype=np.uint8)
    result[..., :3] = out
    result[..., 3] = to_uint8(alpha)[..., 0]
    info: dict[str, object] = {
        "upscaler": name,
        "width": target.width,
        "height": target.height,
        "seconds": round(time.perf_counter() - clock, 3),
        "refine": bool(steps),
    }
    if model is not None and tiler is not None:
        info.update(
            model_scale=int(model.scale),
            passes=len(passes),
            tile=None if tiler.untiled else tiler.tile,
            tile_limit=tiler.limit,
            oom_retries=tiler.oom_retries,
        )
    if steps:
        info.update(refine_tiles=len(steps), seam_fix=params.seam_fix, unblur=params.unblur)
    return JobOutput(images=(result,), seeds=() if seed is None else (seed,), info=info)
