"""ControlNet and IP-Adapter cost: txt2img through ``Engine.run`` with 0, 1 and 2 controls and with 1 reference,
side by side in one run (issue 12).

On CUDA it builds the full-size SD 1.5 (512²) or SDXL (1024²) architecture from the shipped config skeleton and
full-size ControlNets (``ControlNetModel.from_unet``), all with random weights (timing does not depend on them).
On CPU it runs the built-in tiny model, tiny ControlNets and the tiny IP-Adapter at 256 px, so it can be
smoke-tested anywhere (the reference row is CPU-only for now: no full-size IP-Adapter is built on CUDA):

    python bench/bench_controls.py                      # auto device; CPU -> tiny
    python bench/bench_controls.py --families sd15 sdxl --steps 20 --repeat 3

The runs are interleaved (``gpu_bench.side_by_side``); ratios are against 0 controls from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from repo_packages import map_repo_packages

map_repo_packages()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_bench import FAKE_HASH, BenchEvents, build_full_size, side_by_side  # noqa: E402
from latentbrush.backend.control.registry import ControlEntry  # noqa: E402
from latentbrush.backend.engine import Engine, EngineSettings  # noqa: E402
from latentbrush.backend.inputs import InputPixels  # noqa: E402
from latentbrush.backend.models.registry import ModelEntry  # noqa: E402
from latentbrush.protocol import JobInput, JobRequest, Rect, Size  # noqa: E402


def scribble(side: int, seed: int) -> np.ndarray:
    """Dark random strokes on a transparent layer, as a painter's scribble layer is."""
    rng = np.random.default_rng(seed)
    rgba = np.zeros((side, side, 4), np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, side, 2)
        rgba[max(0, y - 2): y + 2, max(0, x - side // 6): x + side // 6] = (20, 20, 20, 255)
    return rgba


def txt2img(engine: Engine, name: str, side: int, steps: int, controls: list[str], references: tuple[str, ...] = ()
            ) -> Any:
    items = tuple(InputPixels(JobInput("control", FAKE_HASH, model=c, preprocessor="scribble"), scribble(side, i),
                              f"job.inputs[{i}].blob") for i, c in enumerate(controls))
    photo = np.random.default_rng(7).integers(0, 256, (300, 400, 4), dtype=np.uint8)  # a reference of its own size
    photo[..., 3] = 255
    refs = tuple(InputPixels(JobInput("reference", FAKE_HASH, model=r), photo, f"job.inputs[{len(items) + i}].blob")
                 for i, r in enumerate(references))
    job = JobRequest(id="bench", op="txt2img", canvas=Size(side, side), region=Rect(0, 0, side, side), model=name,
                     sampler="Euler", steps=steps, cfg=7.0, seed=1, resolution=Size(side, side),
                     inputs=tuple(i.input for i in (*items, *refs)) or None, preview_format="none")
    inputs = {k: v for k, v in (("control", items), ("reference", refs)) if v}

    def run() -> None:
        engine.run(job, inputs, BenchEvents())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", nargs="+", default=["sd15"], choices=["sd15", "sdxl"])
    parser.add_argument("--steps", type=int, default=None, help="default 20 on GPU, 4 on CPU")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    engine = Engine(EngineSettings(device=args.device, models_dir=None))
    device = engine.device
    full = device.type == "cuda"
    steps = args.steps or (20 if full else 4)
    label = torch.cuda.get_device_name(device) if full else f"CPU ({torch.get_num_threads()} threads), tiny models"
    print(f"# ControlNet benchmark\n\n{label}; torch {torch.__version__}, {steps} steps, median of {args.repeat}\n")
    print("| model | conditioning | seconds | per step ms | x none |")
    print("|---|---|---|---|---|")
    for family in args.families:
        side = {"sd15": 512, "sdxl": 1024}[family] if full else 256
        if full:
            from diffusers import ControlNetModel

            dtype = engine.placement.dtype(family)
            pipe = build_full_size(family, device, dtype)
            name, base = f"bench-{family}", family
            with torch.device(device):
                nets = [ControlNetModel.from_unet(pipe.unet, load_weights_from_unet=False).to(dtype).eval()
                        for _ in range(2)]
            controls = [f"bench-{family}-control-{i}" for i in range(2)]
            for control, net in zip(controls, nets, strict=True):
                engine.controls.adopt(ControlEntry(control, "scribble", family, "diffusers", "", "builtin"), net)
            engine.registry.add(ModelEntry(name, "builtin", base, False))
            engine.cache.adopt(engine.registry.get(name), pipe)
        else:
            if family == "sdxl":
                print("(the tiny models have no SDXL ControlNet built in: sdxl runs on CUDA only)", file=sys.stderr)
                continue
            name, controls = "tiny", ["tiny-scribble", "tiny-canny"]  # the built-ins: nothing to build
        started = time.perf_counter()
        cases = {f"{n} control{'s' * (n != 1)}": txt2img(engine, name, side, steps, controls[:n]) for n in (0, 1, 2)}
        if not full:  # the built-in tiny IP-Adapter and image encoder
            cases["1 reference"] = txt2img(engine, name, side, steps, [], ("tiny-ip-adapter",))
        timed = side_by_side(cases, device, args.repeat)
        for case, seconds in timed.items():
            print(f"| {family} {side}² | {case} | {seconds:.3f} | {1000 * seconds / steps:.1f} | "
                  f"{seconds / timed['0 controls']:.2f} |")
        print(f"{family}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
