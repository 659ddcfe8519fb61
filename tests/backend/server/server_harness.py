"""In-process server with the fake engine, and a thin protocol client on the ``websockets`` library.

Everything runs in one event loop (``asyncio.run`` per test): the server never blocks the loop,
and the fake engine runs on the server's worker thread, so client and server interleave for real
over a loopback socket. Waits are bounded only to turn a hang into a failure, never to judge speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from latentbrush.backend.config import ServerConfig
from latentbrush.backend.server import LatentbrushServer
from latentbrush.protocol import (
    BlobHeader,
    ClientHello,
    Error,
    JobRequest,
    JobStatus,
    PreviewHeader,
    ProtocolError,
    Rect,
    ResultHeader,
    Size,
    Submit,
    blob_hash,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
)
from PIL import Image
from server_fakes import FakeEngine
from websockets.asyncio.client import ClientConnection, connect

TOKEN = "test-token-0123456789"
HANG_GUARD_S = 60.0  # only turns a hang into a failure
FINAL = ("done", "error", "cancelled")


def test_config(**overrides: Any) -> ServerConfig:
    base = ServerConfig(
        host="127.0.0.1",
        port=0,
        max_frame_bytes=8 * 1024 * 1024,
        max_pixels=2048 * 2048,
        max_queue=16,
        hello_timeout_s=10.0,
    )
    return dataclasses.replace(base, **overrides)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


@contextlib.asynccontextmanager
async def running_server(engine: FakeEngine | None = None, **overrides: Any) -> AsyncIterator[LatentbrushServer]:
    engine = engine or FakeEngine()
    server = LatentbrushServer(test_config(**overrides), lambda: engine, TOKEN)
    async with server:
        yield server


@dataclass
class JobTrace:
    """Everything one client saw of one job."""

    messages: list[Any] = field(default_factory=list)  # text messages in order
    previews: list[tuple[PreviewHeader, bytes]] = field(default_factory=list)
    results: list[tuple[ResultHeader, bytes]] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [type(m).TYPE for m in self.messages]

    @property
    def final(self) -> Any:
        return self.messages[-1] if self.messages and type(self.messages[-1]).TYPE in FINAL else None


class TestClient:
    """One connection; ``inbox`` keeps what ``recv`` read but the test did not ask for yet."""

    __test__ = False

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: Any = None
        self.traces: dict[str, JobTrace] = {}
        self.other: list[Any] = []  # messages that belong to no job
        self.statuses: dict[str, JobStatus] = {}  # every job's stream checked against the protocol's state machine

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, *, hello: bool = True, client_id: str | None = None, token: str = TOKEN, **kwargs: Any
    ) -> AsyncIterator[TestClient]:
        async with connect(url, compression=None, max_size=None, **kwargs) as ws:
            client = cls(ws)
            if hello:
                await client.say_hello(client_id=client_id, token=token)
            yield client

    async def say_hello(self, client_id: str | None = None, token: str = TOKEN) -> Any:
        await self.send(ClientHello(protocol=1, client="test", token=token, client_id=client_id))
        self.hello = await self.recv()
        return self.hello

    async def send(self, msg: Any) -> None:
        status = self.statuses.get(msg.job.id) if isinstance(msg, Submit) else None
        if status is not None and status.final:  # a job id may be used again once its job ended
            del self.statuses[msg.job.id]
        await self.ws.send(encode_message(msg))

    async def recv(self) -> Any:
        """The next message (decoded) or binary frame ((header, payload) bytes)."""
        data = await asyncio.wait_for(self.ws.recv(), HANG_GUARD_S)
        if isinstance(data, bytes):
            decoded = decode_server_frame(data)
            if isinstance(decoded, ProtocolError):
                raise AssertionError(f"server sent a bad frame: {decoded}")
            header, payload = decoded
            return header, bytes(payload)
        msg = decode_server_message(data)
        if isinstance(msg, ProtocolError):
            raise AssertionError(f"server sent a bad message: {msg}: {data[:200]}")
        return msg

    def _check_life_cycle(self, msg: Any) -> None:
        if isinstance(msg, Error) and msg.job_id is None:
            return
        status = self.statuses.get(msg.job_id) or JobStatus(msg.job_id)
        after = status.apply(msg)
        if isinstance(after, ProtocolError):
            raise AssertionError(f"the server broke the job life cycle: {after}")
        self.statuses[msg.job_id] = after

    def _file(self, item: Any) -> str | None:
        """Put ``item`` into its job trace; returns the job id it belonged to."""
        if isinstance(item, tuple):
            header, payload = item
            self._check_life_cycle(header)
            trace = self.traces.setdefault(header.job_id, JobTrace())
            (trace.previews if isinstance(header, PreviewHeader) else trace.results).append((header, payload))
            return header.job_id
        job_id = getattr(item, "job_id", None)
        if job_id is None:
            self.other.append(item)
            return None
        if item.TYPE != "error" or job_id in self.statuses:  # a refused submit's error may name its job
            self._check_life_cycle(item)
        self.traces.setdefault(job_id, JobTrace()).messages.append(item)
        return job_id

    async def next_other(self) -> Any:
        """The next message that is not about a job (answers to queries, blob errors...)."""
        while not self.other:
            self._file(await self.recv())
        return self.other.pop(0)

    async def wait_for(self, job_id: str, kind: str) -> Any:
        """Read until ``job_id`` has a message of ``kind``; returns that message."""
        while True:
            trace = self.traces.get(job_id)
            if trace is not None:
                for msg in trace.messages:
                    if kind == type(msg).TYPE:
                        return msg
            self._file(await self.recv())

    def seen(self, job_id: str, kind: str) -> list[Any]:
        """Messages of ``kind`` received so far for ``job_id``."""
        trace = self.traces.get(job_id)
        return [m for m in trace.messages if kind == type(m).TYPE] if trace else []

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Read (and file) messages until ``condition()`` holds."""
        while not condition():
            self._file(await self.recv())

    async def wait_position(self, job_id: str, position: int) -> list[int]:
        """Read until the latest ``queued`` of ``job_id`` says ``position``; all positions seen so far."""
        await self.wait_until(lambda: [m.position for m in self.seen(job_id, "queued")][-1:] == [position])
        return [m.position for m in self.seen(job_id, "queued")]

    async def finish(self, job_id: str) -> JobTrace:
        """Read until ``job_id`` has its final message."""
        while True:
            trace = self.traces.get(job_id)
            if trace is not None and trace.final is not None:
                return trace
            self._file(await self.recv())

    async def upload(self, header: BlobHeader, payload: bytes) -> Any:
        await self.ws.send(encode_frame(header, payload))
        return await self.next_other()

    async def upload_rgba(self, pixels: np.ndarray, fmt: str = "png") -> str:
        header, payload = blob_frame(pixels, fmt)
        stored = await self.upload(header, payload)
        assert type(stored).TYPE == "blob_stored", stored
        return header.hash


def blob_frame(pixels: np.ndarray, fmt: str = "png") -> tuple[BlobHeader, bytes]:
    """(header, payload) for an H x W x 4 RGBA or H x W gray array in ``fmt``."""
    height, width = pixels.shape[:2]
    if fmt == "rgba8":
        payload = np.ascontiguousarray(pixels).tobytes()
    elif fmt == "bgra8":
        payload = np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]).tobytes()
    elif fmt == "gray8":
        payload = np.ascontiguousarray(pixels).tobytes()
    else:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt.upper())
        payload = buffer.getvalue()
    return BlobHeader(hash=blob_hash(payload), format=fmt, width=width, height=height), payload


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGBA test picture."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    out[..., 3] = 255
    return out


def circle_mask(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(width, height) / 3) ** 2
    return np.where(inside, 255, 0).astype(np.uint8)


def job(job_id: str, op: str = "txt2img", *, size: int = 64, **fields: Any) -> JobRequest:
    """A small job on a ``size`` x ``size`` canvas, region = whole canvas unless given."""
    defaults: dict[str, Any] = {
        "canvas": Size(size, size),
        "region": Rect(0, 0, size, size),
        "steps": 4,
        "prompt": "a cat",
    }
    defaults.update(fields)
    return JobRequest(id=job_id, op=op, **defaults)  # type: ignore[arg-type]


def submit(job_request: JobRequest) -> Submit:
    return Submit(job_request)


def decode_png(payload: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(payload)) as im:
        return np.asarray(im.convert("RGBA")).copy()
