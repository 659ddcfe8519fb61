"""What the protocol costs on an upload: the same raw pixels over a bare websockets connection and as a blob.

One run, interleaved rounds, both servers in one subprocess (``--serve``), the client in this process:

* ``bare``     - a websockets client sends the payload as one binary message to a websockets server that
  receives it and answers with the time it had it (the issue's baseline);
* ``bare 1 MiB fragments`` - the same message sent in the 1 MiB fragments the protocol client uses (the
  server joins them): the fastest a bare socket gets here, so the stricter reference;
* ``protocol`` - the plugin's ``Client.upload`` (hash, ``query_blobs``, the blob frame) to the real
  ``LatentbrushServer`` (fake engine: uploads never reach it), until ``blob_stored``.

Both are timed **server side** (from the client starting the upload to the server having stored the blob,
on the shared monotonic clock: the server process stamps ``blob_stored`` as it queues it) and **end to end**
(until the client has the answer), plus the server process's CPU seconds per upload. A ratio is bare time /
protocol time: the protocol's speed as a fraction of the bare socket's (1.0 = free). A ``stroke`` case then
uploads a 4096² canvas, changes a 64x64 box and uploads it again: bytes on the wire and time, patch vs full.

    python bench/bench_transfer.py                          # 16 and 64 MiB rgba8, bgra8 64 MiB, 5 rounds
    python bench/bench_transfer.py --rounds 9 --cases rgba8:4096
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAGMENT = 1024 * 1024  # the protocol client's fragment size (codec.FRAGMENT_BYTES), for the fair bare reference
sys.path.insert(0, str(ROOT / "tests" / "backend" / "server"))  # the fake engine (no torch: uploads never reach it)


# ----------------------------------------------------------------------------- the server process


async def serve(token: str) -> None:
    """Both servers; prints ``ports BARE PROTOCOL`` and serves until stdin closes."""
    from latentbrush.backend.config import ServerConfig
    from latentbrush.backend.server import LatentbrushServer
    from latentbrush.backend.service import Session
    from latentbrush.protocol import BlobStored
    from websockets.asyncio.server import serve as ws_serve

    stamps: list[float] = []
    send = Session.send

    def stamped_send(self: Session, msg: object) -> None:  # the moment blob_stored is queued
        if isinstance(msg, BlobStored):
            stamps.append(time.perf_counter())
        send(self, msg)

    Session.send = stamped_send  # type: ignore[method-assign]

    async def bare(ws: object) -> None:
        async for data in ws:  # type: ignore[attr-defined]
            if isinstance(data, str):  # "stamp": the protocol server's last blob_stored time
                await ws.send(repr(stamps[-1] if stamps else 0.0))  # type: ignore[attr-defined]
            else:
                await ws.send(repr(time.perf_counter()))  # type: ignore[attr-defined]

    from server_fakes import make_engine

    config = ServerConfig(port=0, blob_cache_bytes=1024 * 1024 * 1024, log_level="WARNING")
    async with ws_serve(bare, "127.0.0.1", 0, compression=None, max_size=None) as bare_server, \
            LatentbrushServer(config, make_engine, token) as server:
        print(f"ports {bare_server.sockets[0].getsockname()[1]} {server.port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ----------------------------------------------------------------------------- the client


@dataclass
class Times:
    server: list[float]
    end_to_end: list[float]
    server_cpu: list[float]
    sent: list[int]

    @staticmethod
    def new() -> Times:
        return Times([], [], [], [])


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, pid: int, bare_url: str, proto_url: str, token: str) -> None:
        self.pid, self.bare_url, self.proto_url, self.token = pid, bare_url, proto_url, token
        self.counter = 0

    async def __aenter__(self) -> Bench:
        from latentbrush.plugin.core.client import Client
        from websockets.asyncio.client import connect

        self.bare = await connect(self.bare_url, compression=None, max_size=None)
        self.client = Client(self.proto_url, token=self.token, client_name="bench-transfer")
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.bare.close()

    def fresh(self, payload: np.ndarray) -> None:
        """A new blob each round (the server would skip a known one): stamp a counter into the first pixel."""
        self.counter += 1
        payload.reshape(-1)[:8] = np.frombuffer(self.counter.to_bytes(8, "little"), np.uint8)

    async def bare_upload(self, payload: np.ndarray, times: Times, fragment: int | None = None) -> None:
        """One binary message; with ``fragment``, sent in fragments of that many bytes (the server joins them)."""
        self.fresh(payload)
        data = payload.tobytes()  # websockets sends bytes-like objects; the copy is outside the clock
        view = memoryview(data)
        message = [view[i : i + fragment] for i in range(0, len(data), fragment)] if fragment else data
        cpu = server_cpu(self.pid)
        start = time.perf_counter()
        await self.bare.send(message)
        stamp = float(await self.bare.recv())
        times.end_to_end.append(time.perf_counter() - start)
        times.server.append(stamp - start)
        times.server_cpu.append(server_cpu(self.pid) - cpu)
        times.sent.append(len(data))

    async def protocol_upload(self, payload: np.ndarray, fmt: str, times: Times, *, fresh: bool = True,
                              patching: bool = False) -> None:
        """Whole uploads unless ``patching``: each round's image differs from the last in one pixel only."""
        from latentbrush.plugin.core.client import Blob

        if fresh:
            self.fresh(payload)
        if hasattr(self.client, "patching"):
            self.client.patching = patching
        height, width = payload.shape[:2]
        blob = Blob(payload.tobytes(), fmt, width, height)  # the host's buffer; made outside the clock
        before = getattr(self.client.stats, "bytes_uploaded", None)
        cpu = server_cpu(self.pid)
        start = time.perf_counter()
        await self.client.upload([blob])
        times.end_to_end.append(time.perf_counter() - start)
        times.server_cpu.append(server_cpu(self.pid) - cpu)
        await self.bare.send("stamp")
        times.server.append(float(await self.bare.recv()) - start)
        sent = len(blob.payload) if before is None else self.client.stats.bytes_uploaded - before
        times.sent.append(sent)  # (a client without the counter: the payload)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, bare: Times, fragmented: Times, proto: Times) -> None:
    mib = proto.sent[0] / 2**20 if proto.sent else 0
    print(f"  {name} ({mib:.0f} MiB), median of {len(proto.server)}; ratio = bare time / protocol time:")
    for what in ("server", "end_to_end", "server_cpu"):
        b, f, p = (median(getattr(t, what)) for t in (bare, fragmented, proto))
        per_round = [x / y for x, y in zip(getattr(bare, what), getattr(proto, what), strict=True) if y > 0]
        print(f"    {what:10s} bare {b * 1000:7.1f} ms  bare 1 MiB fragments {f * 1000:7.1f} ms  protocol "
              f"{p * 1000:7.1f} ms  ratio {b / p:.2f} (per round {median(per_round):.2f}), to fragments {f / p:.2f}")


async def stroke(bench: Bench, rounds: int) -> None:
    """A 64x64 stroke on a 4096² rgba8 canvas: the upload after it, as a patch and (forced) in full."""
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (4096, 4096, 4), dtype=np.uint8)
    await bench.protocol_upload(canvas, "rgba8", Times.new())  # the base
    patch, full = Times.new(), Times.new()
    for i in range(rounds):
        y, x = 1000 + 8 * i, 2000 + 8 * i
        canvas[y : y + 64, x : x + 64] = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
        await bench.protocol_upload(canvas, "rgba8", patch, fresh=False, patching=True)
        canvas[y, x, 0] ^= 0xFF  # another change, for the whole upload (which also becomes the next base)
        await bench.protocol_upload(canvas, "rgba8", full, fresh=False)
    print(f"  stroke 64x64 on 4096² rgba8, median of {rounds}:")
    print(f"    patch: {median([float(s) for s in patch.sent]):.0f} bytes sent, server "
          f"{median(patch.server) * 1000:.1f} ms, end to end {median(patch.end_to_end) * 1000:.1f} ms")
    print(f"    full:  {median([float(s) for s in full.sent]):.0f} bytes sent, server "
          f"{median(full.server) * 1000:.1f} ms, end to end {median(full.end_to_end) * 1000:.1f} ms")


async def run(args: argparse.Namespace) -> None:
    token = secrets.token_urlsafe(24)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", token, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    if proc.stdout is None or proc.stdin is None:
        raise SystemExit("no pipes to the server process")
    line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().split()
    if not line or line[0] != "ports":
        raise SystemExit(f"the server process did not start: {line}")
    bare_port, proto_port = line[1], line[2]
    rng = np.random.default_rng(0)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, python {platform.python_version()}")
    try:
        async with Bench(proc.pid, f"ws://127.0.0.1:{bare_port}", f"ws://127.0.0.1:{proto_port}", token) as bench:
            for case in args.cases:
                fmt, side = case.split(":")
                payload = rng.integers(0, 256, (int(side), int(side), 4), dtype=np.uint8)
                await bench.bare_upload(payload, Times.new())  # warm-up: buffers, first-call costs
                await bench.protocol_upload(payload, fmt, Times.new())
                await bench.bare_upload(payload, Times.new(), FRAGMENT)
                bare, fragmented, proto = Times.new(), Times.new(), Times.new()
                for i in range(args.rounds):  # alternate the order so a slow spell hits both paths alike
                    if i % 2:
                        await bench.protocol_upload(payload, fmt, proto)
                    await bench.bare_upload(payload, bare)
                    await bench.bare_upload(payload, fragmented, FRAGMENT)
                    if not i % 2:
                        await bench.protocol_upload(payload, fmt, proto)
                report(f"{fmt} {side}x{side}", bare, fragmented, proto)
            if args.stroke and getattr(bench.client, "patching", None) is not None:
                await stroke(bench, args.rounds)
    finally:
        proc.stdin.close()
        await proc.wait()
    print(f"  load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=["rgba8:2048", "rgba8:4096", "bgra8:4096"],
                        help="FORMAT:SIDE, raw square blobs (rgba8:4096 = 64 MiB)")
    parser.add_argument("--no-stroke", dest="stroke", action="store_false", help="skip the dirty-rect stroke case")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
