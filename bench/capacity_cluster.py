"""Validation of ``capacity_sim.py`` on a real cluster: 2 CPU replicas of the tiny model on a local Ray.

A trace of artists' jobs (live bursts, short and long batch jobs, scaled to the tiny model) is
replayed in real time through the gateway's socket, each artist on their own connection and
token; the waits (submit sent -> ``started`` received) and GPU times (``started`` -> final) are
measured at the clients. How long each job held its replica (the gateway's "N s running", Ray's
dispatch included) is read from the gateway's log. The simulation then runs the same trace on 2
GPUs with those times (each kind's mean, and each job's own) and the waits are set side by side.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from capacity_sim import Arrival, Kind, Measured, Profile, quantile, simulate, trace
from latentbrush.protocol import ClientHello, JobRequest, Rect, Size, Submit, decode_server_message, encode_message
from websockets.asyncio.client import connect

ARTISTS = 6
DURATION_S = 60.0
STEPS = {"live": 2, "short": 6, "long": 16}  # tiny-model stand-ins for a live frame, an inpaint, a generate
TINY = Profile((Kind("live", 0.0, 10.0, live=True), Kind("short", 0.0, 2.0), Kind("long", 0.0, 3.5)),
               burst_s=4.0, frame_s=0.5)  # rates scaled to the tiny model's times: a load near 0.8 on 2 replicas
FINAL = ("done", "error", "cancelled")


class Occupancy(logging.Handler):
    """job id -> seconds it held its replica, from ``service._log_end``'s "job %s %s: %.2fs running" lines."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("job %s %s: %.2fs running") and isinstance(record.args, tuple):
            job_id, how, seconds = record.args[:3]
            if how == "done":
                self.seconds[str(job_id)] = float(seconds)  # type: ignore[arg-type]


def request(job_id: str, arrival: Arrival) -> JobRequest:
    return JobRequest(id=job_id, op="txt2img", canvas=Size(64, 64), region=Rect(0, 0, 64, 64), prompt="a cat",
                      steps=STEPS[arrival.kind], seed=1, resolution=Size(64, 64), preview_format="none",
                      stream=arrival.stream)


async def replay(url: str, token: str, arrivals: list[Arrival], start: float, measured: Measured) -> None:
    """One artist's connection: submit each job at its time, time its start and its end."""
    sent: dict[str, tuple[float, Arrival]] = {}
    started: dict[str, float] = {}
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(encode_message(ClientHello(protocol=1, client="capacity-bench", token=token)))
        await ws.recv()

        async def submit_all() -> None:
            for number, arrival in enumerate(arrivals):
                await asyncio.sleep(max(0.0, start + arrival.at - time.monotonic()))
                job_id = f"{arrival.artist}-{number}"
                sent[job_id] = (time.monotonic(), arrival)
                await ws.send(encode_message(Submit(request(job_id, arrival))))

        sender = asyncio.create_task(submit_all())
        ended: set[str] = set()
        while not (sender.done() and ended >= sent.keys()):
            try:
                data = await asyncio.wait_for(ws.recv(), 1.0)
            except asyncio.TimeoutError:
                continue  # nothing to read yet: look at the sender again
            if isinstance(data, bytes):
                continue  # a result frame
            msg = decode_server_message(data)
            kind, job_id = getattr(type(msg), "TYPE", ""), getattr(msg, "job_id", None)
            if job_id not in sent:
                continue
            now = time.monotonic()
            at, arrival = sent[job_id]
            if kind == "started":
                started[job_id] = now
                measured.waits["live" if arrival.live else "batch"].append(now - at)
            elif kind in FINAL:
                ended.add(job_id)
                if kind == "done" and job_id in started:
                    measured.service.setdefault(arrival.kind, []).append(now - started[job_id])
        await sender


async def run_trace(arrivals: list[Arrival], occupancy: Occupancy) -> Measured:
    import ray
    from latentbrush.backend.cluster.artists import Artists
    from latentbrush.backend.cluster.deploy import ReplicaPlan, connect, deploy
    from latentbrush.backend.cluster.gateway import gateway
    from latentbrush.backend.config import ServerConfig
    from ray import serve

    config = ServerConfig(host="127.0.0.1", port=0, device="cpu", max_queue=64)
    tokens = {f"artist{i}": f"capacity-bench-token-{i:04d}-abcdef" for i in range(ARTISTS)}
    measured = Measured(arrivals)
    service_log = logging.getLogger("latentbrush.backend.service")
    service_log.setLevel(logging.INFO)
    service_log.addHandler(occupancy)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "artists.txt"
        path.write_text("".join(f"{name} {token}\n" for name, token in tokens.items()), encoding="utf-8")
        connect("local", num_cpus=2)
        try:
            handle = deploy(config, ReplicaPlan(replicas=2, cpus=0.5))
            artists = Artists(path, max_queue=64)
            async with gateway(config, handle, "unused-gateway-token-0123456789", concurrency=2,
                               tenants=artists) as server:
                await warm_up(server.url, tokens["artist0"])
                start = time.monotonic() + 1.0
                by_artist = {name: [a for a in arrivals if a.artist == name] for name in tokens}
                await asyncio.gather(*(replay(server.url, tokens[name], mine, start, measured)
                                       for name, mine in by_artist.items()))
        finally:
            service_log.removeHandler(occupancy)
            serve.shutdown()
            ray.shutdown()
    return measured


async def warm_up(url: str, token: str) -> None:
    """Two jobs at once, so both replicas have loaded the model before the clock starts."""
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(encode_message(ClientHello(protocol=1, client="capacity-bench", token=token)))
        await ws.recv()
        warm = Arrival(0.0, "warm", "short", False)
        for job_id in ("warm-1", "warm-2"):
            await ws.send(encode_message(Submit(request(job_id, warm))))
        finals = 0
        while finals < 2:
            data = await ws.recv()
            if isinstance(data, str) and getattr(type(decode_server_message(data)), "TYPE", "") in FINAL:
                finals += 1


def validate(seed: int = 5) -> str:
    arrivals = trace(ARTISTS, DURATION_S, TINY, random.Random(seed))
    occupancy = Occupancy()
    measured = asyncio.run(run_trace(arrivals, occupancy))
    held: dict[str, list[float]] = {}
    own: dict[Arrival, float] = {}
    numbers = {a: n for name in {a.artist for a in arrivals}
               for n, a in enumerate([b for b in arrivals if b.artist == name])}
    for arrival in arrivals:
        seconds = occupancy.seconds.get(f"{arrival.artist}-{numbers[arrival]}")
        if seconds is not None:
            held.setdefault(arrival.kind, []).append(seconds)
            own[arrival] = seconds
    means = {kind: statistics.mean(times) for kind, times in held.items()}
    by_mean = simulate(arrivals, 2, lambda a: means.get(a.kind, 0.0))
    by_own = simulate(arrivals, 2, lambda a: own.get(a, means.get(a.kind, 0.0)))
    load = sum(means.get(a.kind, 0.0) for a in arrivals) / DURATION_S / 2
    lines = [f"Validation: {len(arrivals)} jobs of {ARTISTS} artists in {DURATION_S:.0f} s on 2 CPU replicas of the "
             f"tiny model (offered load rho {load:.2f} before superseding). Mean time a job held its replica: "
             + ", ".join(f"{kind} {mean:.3f} s ({len(held[kind])} jobs)" for kind, mean in sorted(means.items())),
             "",
             "| jobs | measured wait p50 / p95 | simulated, kind means | simulated, each job's own time |",
             "|---|---:|---:|---:|"]
    for group in ("live", "batch"):
        real = measured.waits[group]
        cells = [f"{quantile(w, 0.5):.3f} s / {quantile(w, 0.95):.3f} s"
                 for w in (real, by_mean.waits[group], by_own.waits[group])]
        lines.append(f"| {group} ({len(real)} started) | " + " | ".join(cells) + " |")
    every = measured.waits["live"] + measured.waits["batch"]
    lines += ["", f"The least measured wait, {min(every):.3f} s, is the gateway-to-replica dispatch (Ray Serve routing "
              "and the first event's way back), which the simulation does not model."]
    return "\n".join(lines)
