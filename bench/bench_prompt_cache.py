"""What the prompt-embedding cache (backend/ops/prompt_cache.py) saves per job, on the built-in tiny model.

A live stream repeats its prompt on every job; the cache skips the text encoders then. Prints the text
encoding time (a miss) and the median latency of a small job with the cache cold (cleared before each
job) and warm, interleaved so machine load hits both alike. The tiny model's text encoder is tiny too:
on a real SD 1.5 / SDXL model the encoder's share is larger (CLIP ViT-L / ViT-bigG).

    .venv/bin/python bench/bench_prompt_cache.py --runs 20 [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.protocol import JobRequest, Rect, Size


class Quiet:
    cancel = threading.Event()

    def started(self, *a): ...
    def progress(self, *a): ...
    def preview(self, *a): ...
    def result(self, *a): ...


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from latentbrush.backend.ops.prompt_cache import PROMPTS

    engine = Engine(EngineSettings(models_dir=None, device=args.device))
    job = JobRequest(id="b", op="txt2img", canvas=Size(64, 64), region=Rect(0, 0, 64, 64), steps=args.steps,
                     seed=1, sampler="Euler", prompt="a red fox in the snow, oil painting", negative_prompt="blurry",
                     resolution=Size(64, 64), preview_format="none")
    engine.run(job, {}, Quiet())  # load the model
    cold, warm = [], []
    for _ in range(args.runs):
        PROMPTS.clear()
        start = time.perf_counter()
        engine.run(job, {}, Quiet())
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.run(job, {}, Quiet())
        warm.append(time.perf_counter() - start)
    model, _ = engine.cache.get(engine.registry.get("tiny"))
    pipe = model.pipeline("txt2img")
    encode = []
    for _ in range(args.runs):
        start = time.perf_counter()
        pipe.encode_prompt(prompt=job.prompt, device=pipe._execution_device, num_images_per_prompt=1,
                           do_classifier_free_guidance=True, negative_prompt=job.negative_prompt)
        encode.append(time.perf_counter() - start)
    from latentbrush.backend.ops.prompt_cache import PromptKey

    key = PromptKey("tiny", job.prompt, job.negative_prompt, True)
    hit = []
    PROMPTS.prompt_args(pipe, key)
    for _ in range(args.runs):
        start = time.perf_counter()
        PROMPTS.prompt_args(pipe, key)
        hit.append(time.perf_counter() - start)
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"tiny model, {args.device} ({args.threads} threads), {args.steps} steps at 64x64, {args.runs} runs each "
          "(medians)")
    print(f"encode_prompt (prompt + negative): {ms(encode):.2f} ms; a cache hit: {ms(hit):.3f} ms")
    print(f"job, cache cold: {ms(cold):.2f} ms; warm: {ms(warm):.2f} ms; saved {ms(cold) - ms(warm):.2f} ms per job")


if __name__ == "__main__":
    main()
