"""What the WebSocket server costs: the same inpaint through the socket and by calling diffusers directly.

One run, interleaved rounds (this machine is shared and noisy, so paths are compared side by side):

* ``direct``  - ``StableDiffusionInpaintPipeline.__call__`` on the built-in tiny inpaint model, nothing else;
* ``engine``  - ``Engine.run`` in this process (mask math, x0 previews, cancel hooks, compositing);
* ``socket``  - a ``latentbrush-server`` subprocess: submit -> previews (JPEG) -> result (bgra8) -> done,
  timed by the client from sending ``submit`` to receiving ``done``.

Also: time to the first preview frame, and cancel latency (``cancel`` sent at a random moment of a
running job, until ``cancelled`` arrives), next to the time of one denoising step.

    python bench/bench_inpaint_socket.py                      # CPU, 512^2, 8 steps, 5 rounds, 1 thread
    python bench/bench_inpaint_socket.py --device cuda --rounds 10 --cancel-trials 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers.live_server starts and stops the server process


class Clock:
    """Wall seconds and CPU seconds (this process, plus the server process when given) of one run.

    On a shared, overloaded machine wall time swings 10x between identical runs; CPU seconds are
    what each path costs and stay stable, so both are reported.
    """

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid

    def _cpu(self) -> float:
        total = time.process_time()  # all threads of this process
        if self.server_pid is not None:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return total

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu


def inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    image[..., 3] = 255
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.where((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2, 255, 0).astype(np.uint8)
    return image, mask


# ----------------------------------------------------------------------------- direct diffusers


class Direct:
    """The baseline: the pipeline alone, the way a script would call it."""

    def __init__(self, device: str, size: int, steps: int, image: np.ndarray, mask: np.ndarray) -> None:
        import torch
        from diffusers import EulerAncestralDiscreteScheduler
        from latentbrush.backend.models.tiny import build_tiny_sd15
        from PIL import Image

        self.torch = torch
        self.pipe = build_tiny_sd15(inpaint=True).to(device)
        self.pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.args = {
            "prompt": "a cat",
            "image": Image.fromarray(image[..., :3]),
            "mask_image": Image.fromarray(mask),
            "height": size,
            "width": size,
            "num_inference_steps": steps,
            "guidance_scale": 7.0,
            "strength": 1.0,
            "output_type": "np",
        }

    def run(self) -> Clock:
        with Clock() as clock, self.torch.inference_mode():
            self.pipe(**self.args, generator=self.torch.Generator("cpu").manual_seed(1))
        return clock


# ----------------------------------------------------------------------------- the engine in-process


class _Events:
    def __init__(self) -> None:
        self.cancel = threading.Event()

    def started(self, total: int, seed: int | None) -> None: ...

    def progress(self, step: int, total: int, stage: str) -> None: ...

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: object, index: int) -> None: ...

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None: ...


class InProcess:
    def __init__(self, device: str, job: object, image: np.ndarray, mask: np.ndarray) -> None:
        from latentbrush.backend.engine import Engine, EngineSettings

        self.engine = Engine(EngineSettings(device=device))
        self.job, self.image, self.mask = job, image, mask

    def run(self) -> Clock:
        with Clock() as clock:
            from latentbrush.backend.inputs import from_arrays

            self.engine.run(self.job, from_arrays(self.image, self.mask), _Events())
        return clock


# ----------------------------------------------------------------------------- through the socket


class SocketClient:
    """The smallest client there is: the protocol's ClientConnection over a bare websockets socket."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.counter = 0

    async def __aenter__(self) -> SocketClient:
        from latentbrush.protocol import PROTOCOL_MINOR, ClientHello
        from latentbrush.protocol.client_connection import ClientConnection
        from latentbrush.protocol.events import HelloAccepted
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, compression=None, max_size=None)
        self.conn = ClientConnection(ClientHello(protocol=1, minor=PROTOCOL_MINOR, client="bench", token=self.token))
        await self.ws.send(self.conn.start())
        accepted = self.conn.receive_text(await self.ws.recv())
        if not accepted or not isinstance(accepted[0], HelloAccepted):
            raise RuntimeError(f"the server refused the hello: {accepted}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def _events(self) -> list[object]:
        data = await self.ws.recv()
        return self.conn.receive_frame(data) if isinstance(data, bytes) else self.conn.receive_text(data)

    async def upload(self, pixels: np.ndarray, fmt: str) -> str:
        from latentbrush.protocol import BlobHeader, BlobStored, blob_hash
        from latentbrush.protocol.events import Answer

        payload = np.ascontiguousarray(pixels).tobytes()
        header = BlobHeader(blob_hash(payload), fmt, pixels.shape[1], pixels.shape[0])
        key, frame = self.conn.upload(header, payload)
        await self.ws.send(frame)
        while True:
            for event in await self._events():
                if isinstance(event, Answer) and event.key == key:
                    if not isinstance(event.message, BlobStored):
                        raise RuntimeError(f"the server refused the upload: {event.message}")
                    return header.hash

    async def run(self, job: object, cancel_after: float | None = None) -> dict[str, float]:
        """Submit ``job`` (a new id each time); times from submit to first preview, to done or cancelled."""
        import dataclasses

        from latentbrush.protocol import events as ev

        self.counter += 1
        job = dataclasses.replace(job, id=f"bench-{self.counter}")
        times: dict[str, float] = {}
        start = time.perf_counter()
        made = self.conn.submit(job)
        if not isinstance(made, tuple):
            raise RuntimeError(f"cannot submit: {made}")
        await self.ws.send(made[1])
        cancel_task = None
        while True:
            events = await self._events()
            now = time.perf_counter() - start
            for event in events:
                if isinstance(event, ev.JobPreview):
                    times.setdefault("first_preview", now)
                elif isinstance(event, ev.JobProgress):
                    times.setdefault("first_progress", now)
                    times["last_progress"] = now
                    times["steps"] = event.step
                    if cancel_after is not None and cancel_task is None:
                        cancel_task = asyncio.ensure_future(self._cancel_later(job.id, cancel_after, start, times))
                elif isinstance(event, (ev.JobDone, ev.JobCancelled)):
                    times["done" if isinstance(event, ev.JobDone) else "cancelled"] = now
                    if cancel_task is not None:
                        await cancel_task
                    return times
                elif isinstance(event, ev.JobFailed) or (isinstance(event, ev.Answer) and event.key == made[0]
                                                         and type(event.message).TYPE == "error"):
                    if cancel_task is not None:
                        cancel_task.cancel()
                    raise RuntimeError(f"job failed: {event}")

    async def _cancel_later(self, job_id: str, delay: float, start: float, times: dict[str, float]) -> None:
        await asyncio.sleep(delay)
        times["cancel_sent"] = time.perf_counter() - start
        await self.ws.send(self.conn.cancel(job_id))


# ----------------------------------------------------------------------------- main


def summary(values: list[float]) -> str:
    if not values:
        return "none measured"
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def ratios(results: dict[str, list[Clock]], name: str, what: str) -> str:
    mine = [getattr(c, what) for c in results[name]]
    base = [getattr(c, what) for c in results["direct"]]
    pairs = [m / b for m, b in zip(mine, base, strict=True)]
    return (
        f"medians {statistics.median(mine) / statistics.median(base):.3f}, minima {min(mine) / min(base):.3f}, "
        f"per round median {statistics.median(pairs):.3f} [{', '.join(f'{r:.2f}' for r in pairs)}]"
    )


async def bench(args: argparse.Namespace) -> None:
    import torch
    from helpers.live_server import live_server
    from latentbrush.protocol import JobRequest, Rect, Size

    torch.set_num_threads(args.threads)
    image, mask = inputs(args.size)
    direct = Direct(args.device, args.size, args.steps, image, mask)
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-socket-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    with live_server(tmp, "--device", args.device, "--log-level", "WARNING", env=env) as server:
        async with SocketClient(server.url, server.token) as client:
            image_id = await client.upload(image, "rgba8")
            mask_id = await client.upload(mask, "gray8")
            job = JobRequest(
                id="bench",
                op="inpaint",
                canvas=Size(args.size, args.size),
                region=Rect(0, 0, args.size, args.size),
                image=image_id,
                mask=mask_id,
                prompt="a cat",
                model="tiny-inpaint",
                sampler="Euler a",
                steps=args.steps,
                cfg=7.0,
                seed=1,
                resolution=Size(args.size, args.size),
                preview_format="jpeg",
                preview_max_side=512,
                result_format="bgra8",
            )
            engine = InProcess(args.device, job, image, mask) if args.engine else None
            # warm-up: model load, first-call allocations
            direct.run()
            await client.run(job)
            if engine:
                engine.run()
            results: dict[str, list[Clock]] = {"direct": [], "engine": [], "socket": []}
            first_preview: list[float] = []
            for round_index in range(args.rounds):
                # alternate the order, so a slow spell of the shared machine does not always hit one path
                if round_index % 2:
                    results["direct"].append(direct.run())
                with Clock(server.process.pid) as clock:
                    times = await client.run(job)
                results["socket"].append(clock)
                first_preview.append(times["first_preview"])
                if engine:
                    results["engine"].append(engine.run())
                if not round_index % 2:
                    results["direct"].append(direct.run())
            step_s = min(c.wall for c in results["direct"]) / args.steps
            latencies: list[float] = []
            rng = random.Random(0)
            long_job = JobRequest(**{**job.__dict__, "steps": args.cancel_steps})
            finished_first = 0
            for _ in range(args.cancel_trials):
                times = await client.run(long_job, cancel_after=rng.uniform(0, step_s * 4))
                if "cancelled" in times:
                    latencies.append(times["cancelled"] - times["cancel_sent"])
                else:  # the job ended before the cancel arrived: no latency to measure
                    finished_first += 1

    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__}, device {args.device}, threads {args.threads}"
    )
    print(
        f"inpaint tiny-inpaint {args.size}x{args.size}, {args.steps} steps Euler a, cfg 7, previews jpeg, result bgra8"
    )
    for name, clocks in results.items():
        if clocks:
            print(f"  {name:7s} wall {summary([c.wall for c in clocks])}")
            print(f"  {'':7s} cpu  {summary([c.cpu for c in clocks])}")
    for name in ("socket", "engine"):
        if results[name]:
            print(f"  {name}/direct wall: {ratios(results, name, 'wall')}")
            print(f"  {name}/direct cpu:  {ratios(results, name, 'cpu')}")
    print("  (target for socket/direct <= 1.05; cpu = both processes' CPU seconds)")
    print(f"  time to first preview: {summary(first_preview)}; one step ~ {step_s:.3f} s")
    print(f"  cancel latency (cancel sent -> cancelled received): {summary(latencies)}"
          + (f"; {finished_first} job(s) finished before the cancel arrived" if finished_first else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    # one torch thread per process: on a shared 2-core machine two OpenMP threads wait on each other
    # whenever one is descheduled, and every path then swings several-fold from run to run
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cancel-trials", type=int, default=5)
    parser.add_argument("--cancel-steps", type=int, default=50)
    parser.add_argument("--no-engine", dest="engine", action="store_false", help="skip the in-process Engine.run path")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
