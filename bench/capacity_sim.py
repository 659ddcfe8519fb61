"""Capacity model of a studio: N artists on M GPUs behind ``latentbrush-cluster``, as a discrete-event simulation.

    .venv/bin/python bench/capacity_sim.py                 # the table: p50/p95 wait, 10/25/50 artists, 4/8/16 GPUs
    .venv/bin/python bench/capacity_sim.py --validate      # and the same model against a 2-replica local Ray cluster

The simulated gateway schedules as the real one does: ``cluster/scheduler.pick`` (live jobs
first, round robin between artists), one job per GPU at a time, and a live stream's newest frame
supersedes its older ones (a queued frame is dropped, a running one cancelled: SPEC.md 9.11).
*Wait* is submission to start on a GPU (what an artist feels before the first preview).

Assumptions (no GPU was available for this run, so the per-job GPU times are estimates from
public SDXL / SD 1.5 speeds on an RTX 4090-class card: SDXL 1024² about 7-8 it/s in fp16,
SDXL-Turbo/LCM 4 steps about 0.3 s, a 2x tiled upscale of a 2k canvas about 16 tiles of 1 s):

* an artist paints in *live bursts*: one every 120 s on average (exponential gaps), lasting 15 s
  on average, a frame every 0.8 s while it lasts; a frame takes 0.3 s of GPU;
* an *inpaint/refine* every 60 s on average, 3.0 s of GPU (SDXL, ~15 effective steps + VAE);
* a *generate* (batch of 4, SDXL 25 steps) every 300 s, 14 s of GPU;
* an *upscale* (2x, tiled refine) every 600 s, 20 s of GPU;
* all artists active for the whole simulated 2 hours (a busy afternoon, the worst case), one
  model (no model switching: ``serve.multiplexed`` routes by model; a switch would add load time).

That is about 0.18 GPU-seconds per second per artist, so 50 artists need about 9 GPUs' worth:
rows with a load (rho) over 1 are overloaded, and their batch waits grow with the length of the run.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run by path from a checkout

from latentbrush.backend.cluster.scheduler import pick  # noqa: E402


@dataclass(frozen=True)
class Kind:
    name: str
    gpu_s: float  # GPU time of one job
    every_s: float  # mean time between two jobs of one artist (live: between two bursts)
    live: bool = False


@dataclass(frozen=True)
class Profile:
    kinds: tuple[Kind, ...]
    burst_s: float = 15.0  # live: mean burst length
    frame_s: float = 0.8  # live: a frame this often during a burst

    def load(self) -> float:
        """GPU-seconds per second one artist asks for."""
        total = 0.0
        for kind in self.kinds:
            per_job = kind.gpu_s * (self.burst_s / self.frame_s if kind.live else 1.0)
            total += per_job / kind.every_s
        return total


STUDIO = Profile((
    Kind("live", 0.3, 120.0, live=True),
    Kind("inpaint", 3.0, 60.0),
    Kind("generate", 14.0, 300.0),
    Kind("upscale", 20.0, 600.0),
))


@dataclass(frozen=True)
class Arrival:
    at: float
    artist: str
    kind: str
    live: bool
    stream: str | None = None  # live frames: the stream (one per burst) whose newest frame wins


def trace(artists: int, duration_s: float, profile: Profile, rng: random.Random) -> list[Arrival]:
    """Every job the artists submit in ``duration_s``, in time order."""
    out: list[Arrival] = []
    for a in range(artists):
        artist = f"artist{a}"
        for kind in profile.kinds:
            t = rng.expovariate(1.0 / kind.every_s)
            burst = 0
            while t < duration_s:
                if kind.live:
                    end, burst = t + rng.expovariate(1.0 / profile.burst_s), burst + 1
                    frame = t
                    while frame < min(end, duration_s):
                        out.append(Arrival(frame, artist, kind.name, True, f"{artist}-burst{burst}"))
                        frame += profile.frame_s
                    t = end
                else:
                    out.append(Arrival(t, artist, kind.name, False))
                t += rng.expovariate(1.0 / kind.every_s)
    return sorted(out, key=lambda arrival: arrival.at)


@dataclass(frozen=True)
class _Request:
    stream: str | None


@dataclass(eq=False)
class _Job:
    """What ``scheduler.pick`` looks at (``request.stream``, ``seq``), plus the simulation's bookkeeping."""

    arrival: Arrival
    seq: int
    request: _Request
    gpu_s: float
    started: float | None = None
    superseded: bool = False


@dataclass(frozen=True)
class Result:
    waits: dict[str, list[float]]  # "live" / "batch" -> waits of the jobs that started
    superseded: int
    busy_s: float  # GPU time spent, cancelled frames' partial time included
    horizon_s: float
    gpus: int

    @property
    def utilisation(self) -> float:
        return self.busy_s / (self.horizon_s * self.gpus)


def simulate(
    arrivals: Sequence[Arrival], gpus: int, gpu_s: Callable[[Arrival], float], warmup_s: float = 0.0
) -> Result:
    """Run the arrivals through ``gpus`` GPUs with the gateway's policy; waits of jobs arriving after ``warmup_s``."""
    lanes: dict[str, list[_Job]] = {}
    served: dict[str, int] = {}
    tick = 0
    free = gpus
    running: dict[str, tuple[_Job, float]] = {}  # stream -> (job, started) of running live frames
    ends: list[tuple[float, int, _Job]] = []  # (finish time, seq, job)
    waits: dict[str, list[float]] = {"live": [], "batch": []}
    superseded = 0
    busy = 0.0
    pending = list(arrivals)
    index = 0
    now = 0.0
    while index < len(pending) or ends:
        next_arrival = pending[index].at if index < len(pending) else float("inf")
        if ends and ends[0][0] <= next_arrival:
            now, _, job = heapq.heappop(ends)
            if job.superseded:
                continue  # its GPU was freed when it was cancelled
            free += 1
            if job.request.stream is not None:
                running.pop(job.request.stream, None)
        else:
            arrival = pending[index]
            index, now = index + 1, arrival.at
            job = _Job(arrival, index, _Request(arrival.stream), gpu_s(arrival))
            if arrival.stream is not None:
                lane = lanes.get(arrival.artist, [])
                for old in [j for j in lane if j.request.stream == arrival.stream]:
                    lane.remove(old)
                    superseded += 1
                if arrival.stream in running:  # cancelled at its next step: the GPU frees (about) now
                    old, started = running.pop(arrival.stream)
                    old.superseded, free, busy = True, free + 1, busy + (now - started) - old.gpu_s
                    superseded += 1
            lanes.setdefault(arrival.artist, []).append(job)
        while free and (chosen := pick(lanes, served)) is not None:
            artist, position = chosen
            job = lanes[artist].pop(position)
            if not lanes[artist]:
                del lanes[artist]
            tick += 1
            served[artist] = tick
            free -= 1
            job.started = now
            busy += job.gpu_s
            if job.request.stream is not None:
                running[job.request.stream] = (job, now)
            heapq.heappush(ends, (now + job.gpu_s, job.seq, job))
            if job.arrival.at >= warmup_s:
                waits["live" if job.arrival.live else "batch"].append(now - job.arrival.at)
    return Result(waits, superseded, busy, max(now, 1e-9), gpus)


def quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def studio_table(profile: Profile = STUDIO, artists: Sequence[int] = (10, 25, 50), gpus: Sequence[int] = (4, 8, 16),
                 duration_s: float = 7200.0, warmup_s: float = 600.0, seed: int = 17) -> str:
    gpu_of = {kind.name: kind.gpu_s for kind in profile.kinds}
    lines = ["| artists | GPUs | load rho | live wait p50 / p95 | batch wait p50 / p95 | GPU busy |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n in artists:
        arrivals = trace(n, duration_s, profile, random.Random(seed))
        for m in gpus:
            result = simulate(arrivals, m, lambda a: gpu_of[a.kind], warmup_s)
            rho = n * profile.load() / m
            live, batch = result.waits["live"], result.waits["batch"]
            lines.append(f"| {n} | {m} | {rho:.2f}{' (over)' if rho > 1 else ''} | "
                         f"{quantile(live, 0.5):.2f} s / {quantile(live, 0.95):.2f} s | "
                         f"{fmt(quantile(batch, 0.5))} / {fmt(quantile(batch, 0.95))} | {result.utilisation:.0%} |")
    return "\n".join(lines)


def fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.2f} s"


@dataclass
class Measured:
    """A run on the real cluster: the arrivals it replayed, and each job's measured wait and GPU time."""

    arrivals: list[Arrival]
    waits: dict[str, list[float]] = field(default_factory=lambda: {"live": [], "batch": []})
    service: dict[str, list[float]] = field(default_factory=dict)  # kind -> started-to-done times


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=7200.0, help="simulated seconds per cell (default 2 h)")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--validate", action="store_true", help="also replay a trace on a 2-replica local Ray cluster")
    args = p.parse_args(argv)
    print(f"Assumed load: {STUDIO.load():.3f} GPU-s per s per artist\n")
    print(studio_table(duration_s=args.duration, seed=args.seed))
    if args.validate:
        from capacity_cluster import validate  # the Ray part: needs `latentbrush[cluster]`

        print()
        print(validate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
