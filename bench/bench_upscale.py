"""Tiled vs untiled model upscaling: time and peak memory, measured side by side in one run.

Each case runs in a fresh subprocess, so peak memory is that case's alone: on CPU the process's
peak resident set (``resource.getrusage().ru_maxrss``; tracemalloc does not see torch's
allocations), on CUDA ``torch.cuda.max_memory_allocated``. Both are also given above the baseline
measured just before the upscale (torch, the model and a warm-up already in memory). Models are
full-size architectures with seeded random weights (speed and memory do not depend on the
weights): Compact shaped like realesr-general-x4v3 (64 features, 32 convs, 4x) and, on request,
ESRGAN/RRDB shaped like 4x-UltraSharp (64 features, 23 blocks). The upscale is the product path,
``run_upscale`` with ``UpscaleParams(tile=..., overlap=32)``; "untiled" is one tile of the whole image.

    python bench/bench_upscale.py                          # CPU: 1024^2 -> 4096^2 (slow on 2 cores)
    python bench/bench_upscale.py --sizes 512 1024          # several input sizes
    python bench/bench_upscale.py --device cuda --arch compact esrgan --sizes 1024 2048 --repeat 3

Without an installed ``latentbrush`` (a bare GPU box) the repo's folders are mapped onto the package
names; torch, numpy, Pillow, safetensors and spandrel must be importable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

UNTILED = 65536  # a tile side no image reaches: the whole image is one tile
from repo_packages import map_repo_packages  # noqa: E402 - beside this script


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _build(arch: str):
    import spandrel
    import torch

    torch.manual_seed(0)
    if arch == "compact":
        from spandrel.architectures.Compact import Compact

        module = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    elif arch == "esrgan":
        from spandrel.architectures.ESRGAN import ESRGAN

        module = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    else:
        raise SystemExit(f"unknown arch {arch}")
    # the registry's path: a state dict through spandrel's architecture detection
    return spandrel.ModelLoader(device="cpu").load_from_state_dict(module.state_dict())


class _Events:
    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.tiles = 0

    def started(self, total: int, seed: int | None) -> None:
        self.tiles = total

    def progress(self, step: int, total: int, stage: str) -> None:
        pass

    def preview(self, step, total, rgb, rect, index) -> None:
        pass

    def result(self, index, rgba, seed) -> None:
        pass


class _OneModel:
    def __init__(self, model) -> None:
        self.model = model

    def resolve(self, name: str) -> str:
        return "bench"

    def load(self, name: str):
        return self.model


def child(case: dict) -> dict:
    """One measurement in this (fresh) process."""
    map_repo_packages()
    import numpy as np
    import torch
    from latentbrush.backend.upscale import run_upscale
    from latentbrush.protocol import JobRequest, Rect, Size, UpscaleParams

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    dtype = getattr(torch, case["dtype"])
    model = _build(case["arch"]).to(device, dtype).eval()
    registry = _OneModel(model)
    size = case["size"]

    def job(side: int) -> JobRequest:
        params = UpscaleParams(upscaler="bench", scale=4, tile=case["tile"], overlap=case["overlap"])
        region = Rect(0, 0, side, side)
        return JobRequest(
            id="bench",
            op="upscale",
            canvas=Size(side, side),
            region=region,
            image="sha256:" + "0" * 64,
            upscale=params,
            preview_max_side=512,
        )

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.empty((size, size, 4), np.uint8)
    image[..., 0] = 127 + 100 * np.sin(x / 17) * np.cos(y / 23)
    image[..., 1] = (x + y) * 255 / (2 * size)
    image[..., 2] = rng.integers(0, 256, (size, size), dtype=np.uint8)
    image[..., 3] = 255

    run_upscale(job(64), image[:64, :64].copy(), _Events(), upscalers=registry, refine=None)  # warm-up
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_rss = _rss_mb()
    base_cuda = torch.cuda.memory_allocated() / 2**20 if cuda else 0.0
    times, cpu_times = [], []
    events = _Events()
    out = None
    for _ in range(case["repeat"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = run_upscale(job(size), image, events, upscalers=registry, refine=None)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        **case,
        "seconds": statistics.median(times),
        "seconds_min": min(times),
        "cpu_seconds": statistics.median(cpu_times),
        "tiles": events.tiles,
        "tile_used": out.info.get("tile"),
        "peak_rss_mb": peak_rss,
        "rss_over_base_mb": peak_rss - base_rss,
        "output": list(out.images[0].shape),
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
        result.update(peak_cuda_mb=peak, cuda_over_base_mb=peak - base_cuda)
    if case.get("save"):
        np.save(case["save"], out.images[0][..., :3])
    return result


def run_case(case: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {**case, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or float16 (CUDA default)")
    parser.add_argument("--arch", nargs="+", default=["compact"], choices=["compact", "esrgan"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024], help="input sides; output is 4x")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import numpy as np

    dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    print(f"# bench_upscale on {machine(args.device)}; device {args.device} {dtype}; {time.strftime('%Y-%m-%d')}")
    header = (
        f"{'arch':8} {'input':>6} {'mode':8} {'tiles':>5} {'seconds':>8} {'cpu s':>8} {'peak MB':>8} {'+base MB':>8}  "
        f"{'time x':>6} {'cpu x':>6} {'mem x':>6}  tiled vs untiled |diff| max/mean"
    )
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            for size in args.sizes:
                pair = {}
                for mode, tile in (("untiled", UNTILED), ("tiled", args.tile)):
                    case = {
                        "arch": arch,
                        "size": size,
                        "tile": tile,
                        "overlap": args.overlap,
                        "device": args.device,
                        "dtype": dtype,
                        "repeat": args.repeat,
                        "threads": args.threads,
                        "mode": mode,
                        "save": str(Path(tmp) / f"{arch}-{size}-{mode}.npy"),
                    }
                    pair[mode] = row = run_case(case)
                    rows.append(row)
                    if "error" in row:
                        print(f"{arch:8} {size:>6} {mode:8} failed: {row['error']}")
                        continue
                    mem_key = "cuda_over_base_mb" if "peak_cuda_mb" in row else "rss_over_base_mb"
                    peak_key = "peak_cuda_mb" if "peak_cuda_mb" in row else "peak_rss_mb"
                    line = (
                        f"{arch:8} {size:>6} {mode:8} {row['tiles']:>5} {row['seconds']:>8.2f} "
                        f"{row['cpu_seconds']:>8.2f} {row[peak_key]:>8.0f} {row[mem_key]:>8.0f}"
                    )
                    base = pair.get("untiled", {})
                    if mode == "tiled" and "error" not in base:
                        diff = np.abs(np.load(case["save"]).astype(np.int16) - np.load(base["save"]).astype(np.int16))
                        row.update(
                            time_ratio=row["seconds"] / base["seconds"],
                            cpu_ratio=row["cpu_seconds"] / max(base["cpu_seconds"], 1e-9),
                            mem_ratio=row[mem_key] / max(base[mem_key], 1e-9),
                            diff_max=int(diff.max()),
                            diff_mean=float(diff.mean()),
                        )
                        line += (
                            f"  {row['time_ratio']:>6.2f} {row['cpu_ratio']:>6.2f} {row['mem_ratio']:>6.2f}  "
                            f"{row['diff_max']}/{row['diff_mean']:.3f}"
                        )
                    print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
