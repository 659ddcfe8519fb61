"""Diffusion engine benchmark: UNet step time, Engine.run vs the bare diffusers pipeline, preview cost, cancel latency.

On CUDA it builds the full-size SD 1.5 and SDXL architectures from the shipped config skeletons with random
weights (timing does not depend on the weights) and measures, side by side in one run:

- UNet step with CFG (batch 2) at the native size (SD 1.5 512², SDXL 1024²),
- a full inpaint through ``Engine.run`` (masks, prefill, previews, compositing included) vs calling the diffusers
  inpaint pipeline directly with the same settings: the ratio is the engine's overhead,
- preview overhead per step (linear x0 preview + JPEG encode, as the server does) vs ``preview_format="none"``,
  and one TAESD decode (random weights) as the alternative preview,
- cancel latency: cancel set from another thread at a random point of a step, until ``JobCancelled`` arrives,
- (SD 1.5) loading a full-size A1111 ``.safetensors`` offline through the shipped skeleton.

On CPU the same code runs scaled down (tiny models at 256 px) so it can be smoke-tested anywhere:

    python bench/gpu_bench.py                 # auto device; CPU -> tiny
    python bench/gpu_bench.py --steps 20 --repeat 3 --families sd15 sdxl

Without an installed ``latentbrush`` (e.g. a bare GPU box) the repo's folders are mapped onto the package names;
diffusers (and importlib_metadata) must be importable.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from repo_packages import map_repo_packages

map_repo_packages()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from latentbrush.backend.engine import Engine, EngineSettings  # noqa: E402
from latentbrush.backend.events import JobCancelled  # noqa: E402
from latentbrush.backend.inputs import from_arrays  # noqa: E402
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR, load_shipped_tokenizer  # noqa: E402
from latentbrush.backend.models.loader import load_pipeline  # noqa: E402
from latentbrush.backend.models.placement import Placement  # noqa: E402
from latentbrush.backend.models.registry import ModelEntry  # noqa: E402
from latentbrush.backend.ops.previews import TaesdDecoder  # noqa: E402
from latentbrush.backend.ops.samplers import make_scheduler  # noqa: E402
from latentbrush.protocol import JobRequest, Rect, Size  # noqa: E402
from PIL import Image  # noqa: E402

FAKE_HASH = "sha256:" + "0" * 64


# ---------------------------------------------------------------------------------------------- models


def build_full_size(family: str, device: torch.device, dtype: torch.dtype) -> Any:
    """A full-size pipeline from the shipped skeleton, random weights initialised directly on ``device``."""
    from diffusers import (
        AutoencoderKL,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS_DIR / family
    read = lambda part: json.loads((folder / part / "config.json").read_text())  # noqa: E731
    with torch.device(device):
        parts: dict[str, Any] = {
            "unet": UNet2DConditionModel.from_config(read("unet")),
            "vae": AutoencoderKL.from_config(read("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_json_file(folder / "text_encoder" / "config.json")),
            "tokenizer": load_shipped_tokenizer(folder / "tokenizer"),
        }
        if family == "sdxl":
            config_2 = CLIPTextConfig.from_json_file(folder / "text_encoder_2" / "config.json")
            parts["text_encoder_2"] = CLIPTextModelWithProjection(config_2)
            parts["tokenizer_2"] = load_shipped_tokenizer(folder / "tokenizer_2")
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    parts["scheduler"] = make_scheduler("Euler", scheduler_config)
    for name, part in parts.items():
        if isinstance(part, torch.nn.Module):
            parts[name] = part.to(dtype=dtype).eval()
    if family == "sdxl":
        return StableDiffusionXLPipeline(**parts)
    return StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_tiny(family: str) -> Any:
    from latentbrush.backend.models.tiny import build_tiny_sd15, build_tiny_sdxl

    return build_tiny_sdxl(inpaint=False) if family == "sdxl" else build_tiny_sd15(inpaint=False)


# ---------------------------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BenchEvents:
    """Events as the server handles them: previews are JPEG-encoded (q85) like the worker does."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.steps = 0
        self.preview_bytes = 0
        self.step_times: list[float] = []

    def started(self, total: int, seed: int | None) -> None:
        self.step_times.append(time.perf_counter())

    def progress(self, step: int, total: int, stage: str) -> None:
        self.steps = step
        self.step_times.append(time.perf_counter())

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=85)
        self.preview_bytes = len(buffer.getvalue())

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        pass


def test_picture(side: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:side, 0:side]
    rgba = np.dstack([x * 255 // side, y * 255 // side, (x * 7 + y * 13) % 256, np.full_like(x, 255)])
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : 3 * side // 4, side // 3 : 2 * side // 3] = 255
    return rgba.astype(np.uint8), mask


def inpaint_job(name: str, side: int, steps: int, preview: str = "jpeg", seed: int = 1) -> JobRequest:
    return JobRequest(
        id="bench", op="inpaint", canvas=Size(side, side), region=Rect(0, 0, side, side), image=FAKE_HASH,
        mask=FAKE_HASH, model=name, sampler="Euler", steps=steps, cfg=7.0, seed=seed, resolution=Size(side, side),
        mask_grow=8, mask_feather=8, mask_blend=8, preview_format=preview,
    )


def median_time(fn: Any, device: torch.device, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------- measurements


@torch.inference_mode()
def unet_step_ms(pipe: Any, side: int, device: torch.device, repeat: int) -> float:
    unet = pipe.unet
    dtype = unet.dtype
    latents = torch.randn(2, 4, side // 8, side // 8, device=device, dtype=dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    extra = {}
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, pooled, device=device, dtype=dtype),
            "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * 2, device=device, dtype=dtype),
        }
    return 1000 * median_time(lambda: unet(latents, t, context, **extra), device, repeat, warmup=3)


def direct_inpaint(engine: Engine, name: str, side: int, steps: int) -> Any:
    model, _ = engine.cache.get(engine.registry.get(name))
    pipe = model.pipeline("inpaint")
    rgba, mask = test_picture(side)
    image, mask_image = Image.fromarray(rgba[..., :3]), Image.fromarray(mask)

    def run() -> None:
        pipe.scheduler = make_scheduler("Euler", model.scheduler_config)
        pipe(prompt="a photo", image=image, mask_image=mask_image, num_inference_steps=steps, guidance_scale=7.0,
             strength=1.0, height=side, width=side, output_type="np", generator=torch.Generator().manual_seed(1))

    return run


def engine_inpaint(engine: Engine, name: str, side: int, steps: int, preview: str = "jpeg") -> Any:
    rgba, mask = test_picture(side)
    job = inpaint_job(name, side, steps, preview)

    def run() -> BenchEvents:
        events = BenchEvents()
        engine.run(job, from_arrays(rgba, mask), events)
        return events

    return run


def side_by_side(runs: dict[str, Any], device: torch.device, repeat: int) -> dict[str, float]:
    """Median seconds of each run, the runs interleaved so drifting clocks hit all alike."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeat):
        for key, run in runs.items():
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def taesd_decode_ms(device: torch.device, dtype: torch.dtype, side: int) -> float:
    from diffusers import AutoencoderTiny

    with torch.device(device):
        decode = TaesdDecoder(AutoencoderTiny().to(dtype=dtype).eval())
    latent = torch.randn(1, 4, side // 8, side // 8, device=device, dtype=dtype)
    return 1000 * median_time(lambda: decode(latent), device, 5)


def cancel_latency_ms(engine: Engine, name: str, side: int, steps: int, trials: int) -> list[float]:
    rgba, mask = test_picture(side)
    job = inpaint_job(name, side, steps)
    rng = random.Random(0)
    latencies = []
    for _ in range(trials):
        events = BenchEvents()
        done: dict[str, float] = {}

        def work(events: BenchEvents = events, done: dict[str, float] = done) -> None:
            try:
                engine.run(job, from_arrays(rgba, mask), events)
            except JobCancelled:
                done["at"] = time.perf_counter()

        thread = threading.Thread(target=work)
        thread.start()
        while events.steps < 3 and thread.is_alive():
            time.sleep(0.0005)
        step_s = (events.step_times[-1] - events.step_times[1]) / max(1, len(events.step_times) - 2)
        time.sleep(rng.uniform(0, step_s))  # somewhere inside a step
        set_at = time.perf_counter()
        events.cancel.set()
        thread.join()
        if "at" in done:
            latencies.append(1000 * (done["at"] - set_at))
    return latencies


def single_file_load_s(pipe: Any, placement: Placement) -> float:
    from latentbrush.backend.models.ldm_layout import write_sd15_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = write_sd15_checkpoint(pipe, Path(folder) / "sd15-random.safetensors", dtype=torch.float16)
        start = time.perf_counter()
        loaded, _ = load_pipeline(ModelEntry("sd15-random", "file", "sd15", False, str(path)), placement)
        seconds = time.perf_counter() - start
        key = "conv_in.weight"
        same = torch.equal(loaded.unet.state_dict()[key].cpu().half(), pipe.unet.state_dict()[key].cpu().half())
        if not same:
            raise SystemExit("single-file round trip changed the weights")
        del loaded
    return seconds


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    parser.add_argument("--steps", type=int, default=None, help="inpaint steps (default 20 on GPU, 8 on CPU)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cancel-trials", type=int, default=5)
    parser.add_argument("--no-single-file", action="store_true", help="skip the full-size single-file load")
    args = parser.parse_args()

    engine = Engine(EngineSettings(device=args.device, models_dir=None))
    device = engine.device
    full = device.type == "cuda"
    steps = args.steps or (20 if full else 8)
    if not full:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    import diffusers

    label = torch.cuda.get_device_name(device) if full else f"CPU ({torch.get_num_threads()} threads), tiny models"
    print(f"# latentbrush engine benchmark\n\n{label}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{steps} steps, median of {args.repeat}\n")

    rows: dict[str, dict[str, str]] = {}
    for family in args.families:
        side = {"sd15": 512, "sdxl": 1024}[family] if full else 256
        dtype = engine.placement.dtype(family)
        started = time.perf_counter()
        pipe = build_full_size(family, device, dtype) if full else build_tiny(family)
        name = f"bench-{family}"
        entry = ModelEntry(name, "builtin", family if full else ("sdxl" if family == "sdxl" else "tiny"), False)
        engine.registry.add(entry)
        model = engine.cache.adopt(entry, pipe)
        built_s = time.perf_counter() - started
        col = f"{family} {side}² {str(dtype).removeprefix('torch.')}"
        out: dict[str, str] = {"build (random weights)": f"{built_s:.1f} s"}

        out["UNet step, CFG (batch 2)"] = f"{unet_step_ms(model.pipeline('txt2img'), side, device, 10):.1f} ms"
        timed = side_by_side(
            {
                "direct": direct_inpaint(engine, name, side, steps),
                "engine": engine_inpaint(engine, name, side, steps),
                "engine_nopreview": engine_inpaint(engine, name, side, steps, preview="none"),
            },
            device,
            args.repeat,
        )
        out[f"inpaint {steps} steps, diffusers pipeline"] = f"{timed['direct']:.3f} s"
        out[f"inpaint {steps} steps, Engine.run (linear previews)"] = f"{timed['engine']:.3f} s"
        out["Engine.run / pipeline"] = f"{timed['engine'] / timed['direct']:.3f}"
        out["Engine.run without previews / pipeline"] = f"{timed['engine_nopreview'] / timed['direct']:.3f}"
        per_step = (timed["engine"] - timed["engine_nopreview"]) / steps * 1000
        out["preview overhead per step (linear + JPEG)"] = f"{per_step:.2f} ms"

        out["TAESD preview decode (random weights)"] = f"{taesd_decode_ms(device, dtype, side):.1f} ms"

        latencies = cancel_latency_ms(engine, name, side, steps, args.cancel_trials)
        if latencies:
            out["cancel latency median / max"] = f"{statistics.median(latencies):.1f} / {max(latencies):.1f} ms"
        if full and family == "sd15" and not args.no_single_file:
            load_s = single_file_load_s(pipe, engine.placement)
            out["single-file load, full-size A1111 fp16 (offline)"] = f"{load_s:.1f} s"
        if full:
            out["peak GPU memory"] = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
        rows[col] = out
        print(f"{col}: done", file=sys.stderr)

    columns = list(rows)
    metrics = list(dict.fromkeys(m for r in rows.values() for m in r))
    print("| metric | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for metric in metrics:
        print(f"| {metric} | " + " | ".join(rows[c].get(metric, "–") for c in columns) + " |")


if __name__ == "__main__":
    main()
