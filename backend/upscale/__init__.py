"""Upscaling: spandrel models in feathered tiles, Lanczos fallback, tiled img2img refine + seam fix.

The engine calls ``run_upscale`` for ``job.op == "upscale"`` with an ``UpscalerRegistry`` it owns.
"""

from .plan import output_size
from .registry import LANCZOS, UpscalerRegistry
from .run import run_upscale

__all__ = ["LANCZOS", "UpscalerRegistry", "output_size", "run_upscale"]
