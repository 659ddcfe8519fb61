"""A scriptable protocol-v1 server for client tests: real websockets and codec, no diffusion.

Each job runs ``steps`` steps; a step waits on ``gate`` (an asyncio.Event the test controls) when
``gated`` is set, so a test can act at an exact step with no timing assumptions. Results are
solid images whose colour encodes the job's index and seed, so tests can check what arrived.
Sessions survive dropped connections (resume by client id, missed events replayed), and
``restart()`` forgets everything, like a new server process would. The hello gate, decoding and
job states are the protocol's own ``ServerConnection`` and ``JobStatus``, as in the real server.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from latentbrush.protocol import (
    PROTOCOL_MINOR,
    BlobsAnswer,
    BlobStored,
    Cancel,
    Cancelled,
    ClientHello,
    Done,
    Error,
    ErrorCode,
    JobRequest,
    JobStatus,
    Limits,
    ModelInfo,
    ModelsAnswer,
    PreviewHeader,
    Progress,
    ProtocolError,
    QueryBlobs,
    QueryModels,
    QueryQueue,
    QueueAnswer,
    Queued,
    ResultHeader,
    ServerHello,
    Started,
    Submit,
    check_job,
    encode_frame,
    encode_message,
    upscale_rect,
)
from latentbrush.protocol.server_connection import BlobReceived, Close, HelloReceived, Request, Send
from latentbrush.protocol.server_connection import ServerConnection as Connection
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

LIMITS = Limits(max_frame_bytes=64 * 1024 * 1024, max_pixels=4096 * 4096, max_queue=8, max_batch=4, max_steps=50)
MODELS = (ModelInfo("fake", "tiny", False, 64, "builtin"),)


def result_color(index: int, seed: int) -> tuple[int, int, int]:
    return (seed * 7 + index * 50) % 256, (seed * 13) % 256, (index * 90 + 10) % 256


def solid(fmt: str, width: int, height: int, rgb: tuple[int, int, int], alpha: int = 255) -> bytes:
    r, g, b = rgb
    pixel = bytes((b, g, r, alpha)) if fmt == "bgra8" else bytes((r, g, b, alpha))
    return pixel * (width * height)


@dataclass(eq=False)
class Session:
    client_id: str
    ws: ServerConnection | None = None
    missed: list[str | bytes] = field(default_factory=list)  # queued while disconnected
    jobs: dict[str, JobStatus] = field(default_factory=dict)
    cancelling: set[str] = field(default_factory=set)  # cancel received, not yet acted on
    streams: dict[str, str] = field(default_factory=dict)  # job id -> its live stream (SPEC.md 9.11)
    superseded: set[str] = field(default_factory=set)  # cancelling because a newer job of its stream came

    def state(self, job_id: str) -> str | None:
        """"cancelling" once a cancel arrived for a live job, else the job's protocol state."""
        status = self.jobs.get(job_id)
        if status is None:
            return None
        return "cancelling" if job_id in self.cancelling and status.live else status.state

    async def job(self, msg: Queued | Started | Progress | Done | Cancelled) -> None:
        """Send a job message; the fake obeys the same state machine as the real server."""
        status = self.jobs.get(msg.job_id) or JobStatus(msg.job_id)
        after = status.apply(msg)
        if isinstance(after, ProtocolError):
            raise AssertionError(f"fake server broke the job life cycle: {after}")
        self.jobs[msg.job_id] = after
        await self.send(encode_message(msg))

    async def send(self, data: str | bytes) -> None:
        if self.ws is None:
            self.missed.append(data)
            return
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            self.missed.append(data)


class FakeServer:
    def __init__(self, token: str = "test-token", steps: int = 3) -> None:
        self.token = token
        self.steps = steps
        self.gated = False
        self.gate = asyncio.Event()
        self.step_reached = asyncio.Event()  # set whenever a job finishes a step
        self.uploads = 0
        self.minor = PROTOCOL_MINOR  # set to 0 to play a 1.0 server
        self.protocol = 1  # the major version its hello claims
        self.texts: list[str] = []  # every text frame received, as sent
        self.hellos: list[ClientHello] = []
        self.submitted: list[JobRequest] = []
        self.sessions: dict[str, Session] = {}
        self.blobs: dict[str, tuple[int, int]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._server = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", self._port, compression=None, max_size=None)
        self._port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        """Stop, forget every session and blob, listen again on the same port."""
        await self.stop()
        self.sessions.clear()
        self.blobs.clear()
        await self.start()

    async def drop_connections(self) -> None:
        """Cut every client connection (the server itself keeps running)."""
        for session in self.sessions.values():
            if session.ws is not None:
                ws, session.ws = session.ws, None
                ws.transport.abort()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Connection(token_ok=lambda token: token == self.token, max_frame_bytes=LIMITS.max_frame_bytes,
                          max_pixels=LIMITS.max_pixels)
        event = None
        while not isinstance(event, HelloReceived):
            try:
                data = await ws.recv()
            except ConnectionClosed:
                return
            event = conn.receive_text(data) if isinstance(data, str) else conn.receive_blob(data)
            if isinstance(event, Close):
                await ws.send(event.text)
                await ws.close(event.code, event.reason)
                return
            if isinstance(event, Send):
                await ws.send(event.text)
        hello = event.hello
        self.hellos.append(hello)
        resumed = hello.client_id in self.sessions
        session = self.sessions.get(hello.client_id or "") or Session(hello.client_id or f"c{next(self._ids)}")
        self.sessions[session.client_id] = session
        await ws.send(conn.accept(ServerHello(
            protocol=self.protocol, minor=self.minor, server="fake", client_id=session.client_id, resumed=resumed,
            device="cpu", dtype="float32", models=MODELS, upscalers=("lanczos",), samplers=("Euler a",),
            limits=LIMITS, default_model="fake",
        )))
        session.ws = ws
        missed, session.missed = session.missed, []
        for data in missed:
            await session.send(data)
        try:
            async for data in ws:
                await self._on_message(session, conn, data)
        except ConnectionClosed:
            pass
        finally:
            if session.ws is ws:
                session.ws = None

    async def _on_message(self, session: Session, conn: Connection, data: str | bytes) -> None:
        if isinstance(data, str):
            self.texts.append(data)
        event = conn.receive_blob(data) if isinstance(data, bytes) else conn.receive_text(data)
        if isinstance(event, Send):
            await session.send(event.text)
            return
        if isinstance(event, BlobReceived):
            header = event.header
            self.blobs[header.hash] = (header.width, header.height)
            self.uploads += 1
            await session.send(encode_message(BlobStored(header.hash, header.width, header.height)))
            return
        if not isinstance(event, Request):
            return
        msg = event.message
        if isinstance(msg, QueryBlobs):
            have = tuple(h for h in msg.hashes if h in self.blobs)
            missing = tuple(h for h in msg.hashes if h not in have)
            await session.send(encode_message(BlobsAnswer(have, missing, msg.request_id)))
        elif isinstance(msg, QueryModels):
            await session.send(encode_message(ModelsAnswer(MODELS, ("lanczos",), ("Euler a",), "fake",
                                                           msg.request_id)))
        elif isinstance(msg, QueryQueue):
            live = tuple(status.info() for status in session.jobs.values() if status.live)
            await session.send(encode_message(QueueAnswer(live, msg.request_id)))
        elif isinstance(msg, Cancel):
            status = session.jobs.get(msg.job_id)
            if status is not None and status.live:
                session.cancelling.add(msg.job_id)
            elif status is None:
                await session.send(encode_message(Error("unknown_job", "no such live job", "job_id", msg.job_id)))
        elif isinstance(msg, Submit):
            await self._submit(session, msg)

    async def _submit(self, session: Session, msg: Submit) -> None:
        job = msg.job
        err = check_job(job, LIMITS.max_pixels)
        if err is None and job.model not in ("", "fake"):
            err = ProtocolError(ErrorCode.UNKNOWN_MODEL, f"no model {job.model!r}", "job.model")
        for name in ("image", "mask"):
            blob = getattr(job, name)
            if err is None and blob is not None and blob not in self.blobs:
                err = ProtocolError(ErrorCode.UNKNOWN_BLOB, f"no blob {blob}", f"job.{name}")
        if err is not None:
            await session.send(encode_message(Error(err.code.value, err.message, err.field, job.id)))
            return
        self.submitted.append(job)
        if job.stream is not None:  # supersede the stream's earlier live jobs, at their next step
            for job_id, stream in session.streams.items():
                status = session.jobs.get(job_id)
                if stream == job.stream and status is not None and status.live and job_id not in session.cancelling:
                    session.cancelling.add(job_id)
                    session.superseded.add(job_id)
            session.streams[job.id] = job.stream
        await session.job(Queued(job.id, 0))
        self._spawn(self._run(session, msg))

    async def _run(self, session: Session, msg: Submit) -> None:
        job = msg.job
        seed = job.seed if job.seed is not None else 1234
        await session.job(Started(job.id, self.steps, seed))
        context = upscale_rect(job) if job.op == "upscale" else job.context or job.region
        for step in range(1, self.steps + 1):
            if self.gated:
                await self.gate.wait()
            await asyncio.sleep(0)
            if job.id in session.cancelling:
                session.cancelling.discard(job.id)
                reason = "superseded" if job.id in session.superseded and self.minor >= 1 else None
                await session.job(Cancelled(job.id, reason))
                return
            await session.job(Progress(job.id, step, self.steps))
            if job.preview_format in ("rgba8", "bgra8"):
                scale = min(1.0, job.preview_max_side / max(context.width, context.height))
                w, h = max(1, round(context.width * scale)), max(1, round(context.height * scale))
                header = PreviewHeader(job.id, step, self.steps, context, job.preview_format, w, h)
                await session.send(encode_frame(header, solid(job.preview_format, w, h, (step * 40 % 256, 0, 0))))
            self.step_reached.set()
        rect = upscale_rect(job) if job.op == "upscale" else job.region
        seeds = tuple(seed + i for i in range(job.batch))
        for index in range(job.batch):
            payload = solid(job.result_format, rect.width, rect.height, result_color(index, seeds[index]))
            header = ResultHeader(job.id, index, rect, job.result_format, rect.width, rect.height, seeds[index])
            await session.send(encode_frame(header, payload))
        await session.job(Done(job.id, job.batch, seeds, {"model": "fake", "sampler": job.sampler}))


async def wait_for(predicate, what: str, limit: float = 20.0) -> None:
    """Poll ``predicate`` on the loop until true; the limit only stops a broken test from hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)

