"""Sessions, the job queue and the scheduler: everything between a decoded request and the worker.

A *session* is a client id; connections come and go, sessions stay while they own live or
undelivered work. Events of a job go to whatever connection its session has right now, so a
client that reconnects with its id keeps receiving a running job's stream. Finished results wait
in the session until some connection has sent them (within ``retention_bytes``, oldest dropped
first); on resume they are replayed. With a ``spool``, results that wait for a connection (their
session has none, or lost it before they went out) are also kept on disk until delivered, and a
restarted service loads them, so a resume outlives the process too (spool.py). Loop thread only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from latentbrush.protocol import (
    CANCEL_SUPERSEDED,
    Cancelled,
    Done,
    Error,
    ErrorCode,
    JobInfo,
    JobStatus,
    Progress,
    ProtocolError,
    Queued,
    Started,
)
from latentbrush.protocol.lifecycle import ERROR, QUEUED, STARTED

from .blobs import BlobCache
from .jobs import FairQueue, JobRecord
from .outbox import Outbox
from .results import encode_results, json_safe
from .sessions import JobQueue, Session
from .spool import Spool, SpoolEntry
from .streams import StreamPins, superseded_by
from .worker import Outcome, Worker

log = logging.getLogger(__name__)

IDLE_SESSION_TTL_S = 30 * 60.0  # a session without a connection expires after this (SPEC.md 11)
MAX_IDLE_SESSIONS = 256  # beyond this many disconnected sessions the oldest expire early


class JobService:
    def __init__(
        self,
        worker: Worker,
        blobs: BlobCache,
        *,
        max_queue: int,
        retention_bytes: int,
        queue: JobQueue | None = None,
        concurrency: int = 1,
        spool: Spool | None = None,
    ) -> None:
        self._worker = worker
        self._blobs = blobs
        self._max_queue = max_queue
        self._retention_bytes = retention_bytes
        self.sessions: dict[str, Session] = {}
        self._queue: JobQueue = queue if queue is not None else FairQueue()
        self._concurrency = concurrency  # jobs running at once (1: a local GPU; one per replica in a cluster)
        self._running: set[JobRecord] = set()
        self._retained: OrderedDict[JobRecord, None] = OrderedDict()  # final, undelivered; oldest first
        self._retained_bytes = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._spool = spool

    # ------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        if self._spool is not None:
            self._load_spool(self._spool)
        self._runner = self.spawn(self._run_jobs(), "job runner")

    async def stop(self) -> None:
        """Cancel everything: queued jobs are dropped, the running job is told to stop."""
        for record in self._running:
            record.cancel.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """A tracked task: kept referenced, its failure logged, cancelled at stop()."""
        task = asyncio.create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _load_spool(self, spool: Spool) -> None:
        """Sessions for the finished, undelivered jobs a previous run left; over budget, oldest expire."""
        entries = spool.load()
        now = time.monotonic()
        for rank, entry in enumerate(entries):
            session = self.sessions.get(entry.client_id)
            if session is None:
                session = Session(entry.client_id, streams=StreamPins(self._blobs), disconnected_at=now)
                self.sessions[entry.client_id] = session
            record = JobRecord(entry.request, entry.client_id, seq=rank - len(entries))  # before any new job
            record.status = JobStatus(record.job_id, type(entry.final).TYPE)  # the final state of that name
            record.final, record.finished_at = entry.final, now
            record.frames, record.results = dict(entry.frames), set(entry.frames)
            session.jobs[record.job_id] = record
            session.remember(record.job_id)
            self._retained[record] = None
            self._retained_bytes += record.retained_bytes
            self._enforce_retention()
        if entries:
            log.info("spool %s: %d finished jobs of %d clients wait for them", spool.root, len(entries),
                     len(self.sessions))

    def _spool_save(self, record: JobRecord) -> None:
        if self._spool is None:
            return
        entry = SpoolEntry(record.client_id, record.seq, record.request, record.final, dict(record.frames))
        try:
            self._spool.save(entry)
        except OSError as exc:  # the result is still held in memory; only a restart would lose it
            log.warning("spool: cannot keep job %s on disk: %s", record.job_id, exc)

    # ------------------------------------------------------------------------- sessions

    def attach(self, client_id: str | None, outbox: Outbox) -> tuple[Session, bool, Outbox | None]:
        """Bind a connection to a session: (session, resumed, the connection it supersedes).

        An id the server does not hold (never seen, or expired) gets a fresh session with a
        fresh id (SPEC.md 4 step 5): ids are 128 random bits, so they cannot be guessed.
        """
        self._prune_sessions()
        session = self.sessions.get(client_id) if client_id else None
        resumed = session is not None
        if session is None:
            session = Session(uuid.uuid4().hex, streams=StreamPins(self._blobs))
            self.sessions[session.client_id] = session
        previous, session.outbox, session.disconnected_at = session.outbox, outbox, None
        if previous is not None:
            previous.close()  # its unsent items are replayed below, once, on the new connection
        return session, resumed, previous

    def replay(self, session: Session) -> None:
        """Tell a (re)attached connection where each of its jobs stands; resend what it missed."""
        for record in sorted(session.jobs.values(), key=lambda r: r.seq):
            if record.status.live:
                for msg in record.status.replay():
                    session.send(msg)
                self._send_frames(session, record)  # finished batch items not yet handed to a connection
            elif not record.delivered:
                self._send_final(session, record)

    def detach(self, session: Session, outbox: Outbox) -> None:
        if session.outbox is outbox:
            session.outbox = None
            session.disconnected_at = time.monotonic()
            for record in session.jobs.values():  # what the lost connection did not get out
                if record.is_final and not record.delivered:
                    self._spool_save(record)
        self._prune_sessions()

    def _prune_sessions(self) -> None:
        """Expire sessions disconnected too long, and the oldest idle ones beyond a count."""
        now = time.monotonic()
        idle = sorted(
            (s for s in self.sessions.values() if s.outbox is None and s.disconnected_at is not None),
            key=lambda s: s.disconnected_at or 0.0,
        )
        excess = len(idle) - MAX_IDLE_SESSIONS
        for rank, session in enumerate(idle):
            if rank < excess or now - (session.disconnected_at or now) >= IDLE_SESSION_TTL_S:
                self._expire(session)

    def _expire(self, session: Session) -> None:
        """SPEC.md 11: an expired session's queued jobs are dropped and its results freed."""
        log.info("session %s expired with %d jobs", session.client_id, len(session.jobs))
        del self.sessions[session.client_id]
        for record in session.jobs.values():
            if self._queue.remove(session.client_id, record.job_id) is not None:
                for key in record.blob_keys:  # never reaches _finish
                    self._blobs.unpin(key)
            elif not record.is_final:
                record.cancel.set()  # running: nobody will ever collect it
            self._forget_retained(record)
        session.jobs.clear()
        if session.streams is not None:
            session.streams.release()
        self._queue.forget_client(session.client_id)
        self._announce_positions()

    # ------------------------------------------------------------------------- requests

    def holds(self, session: Session, job_id: str) -> bool:
        """Is ``job_id`` queued, running, or finished but undelivered in this session?"""
        return job_id in session.jobs

    def submit(self, session: Session, record: JobRecord) -> ProtocolError | None:
        superseded = superseded_by(record, session.jobs.values())
        dropped = sum(1 for r in superseded if r not in self._running and r.state == QUEUED)  # leave at once
        unfinished = sum(1 for r in session.jobs.values() if not r.is_final) - dropped
        if unfinished >= self._max_queue:
            return ProtocolError(ErrorCode.QUEUE_FULL, f"this client has {unfinished} unfinished jobs already")
        session.jobs[record.job_id] = record
        session.remember(record.job_id)
        for key in record.blob_keys:
            self._blobs.pin(key)
        for old in superseded:  # SPEC.md 9.11: the newest job of a stream wins
            log.info("job %s superseded by %s (stream %s)", old.job_id, record.job_id, record.request.stream)
            self._stop(old, CANCEL_SUPERSEDED)
        if record.request.stream is not None and session.streams is not None:
            session.streams.hold(record.request.stream, record.blob_keys)
        self._queue.push(record)
        self._announce_positions()
        self._wake.set()
        return None

    def cancel(self, session: Session, job_id: str) -> ProtocolError | None:
        """SPEC.md 9.7; a job that already had its final message is left alone, without answer."""
        record = session.jobs.get(job_id)
        if record is None:
            if job_id in session.known_ids:
                return None
            return ProtocolError(ErrorCode.UNKNOWN_JOB, f"this session has no job {job_id}", "job_id", job_id)
        if not record.is_final:
            self._stop(record, None)
        return None

    def _stop(self, record: JobRecord, reason: str | None) -> None:
        """End a queued job now, or have the running one stop; ``reason`` goes in its ``cancelled``."""
        if not record.cancel.is_set():  # the first stop says why
            record.cancel_reason = reason
        if record.state == QUEUED and self._queue.remove(record.client_id, record.job_id) is not None:
            self._finish(record, Cancelled(record.job_id, record.cancel_reason))
            self._announce_positions()
        else:
            record.cancel.set()  # the engine raises JobCancelled within one UNet block

    def jobs_of(self, session: Session) -> tuple[JobInfo, ...]:
        live = sorted((r for r in session.jobs.values() if not r.is_final), key=lambda r: r.seq)
        return tuple(self._info(r) for r in live)

    def _info(self, record: JobRecord) -> JobInfo:
        if record in self._running and record.state == QUEUED:  # left the queue, its model still loading
            return JobInfo(record.job_id, STARTED, None, record.request.op)
        return record.status.info(record.request.op)

    def _announce_positions(self) -> None:
        for position, record in enumerate(self._queue.order()):
            if record.state != QUEUED or record.position != position:
                self._send(record, Queued(record.job_id, position))

    def _advance(self, record: JobRecord, msg: Any) -> bool:
        """Move ``record`` along the protocol's job state machine; a refused step is a server bug, not sent."""
        after = record.status.apply(msg)
        if isinstance(after, ProtocolError):
            log.error("job %s: not sending %s: %s", record.job_id, type(msg).__name__, after.message)
            return False
        record.status = after
        return True

    def _send(self, record: JobRecord, msg: Any) -> None:
        if not self._advance(record, msg):
            return
        session = self.sessions.get(record.client_id)
        if session is not None:
            session.send(msg)

    # ------------------------------------------------------------------------- worker events

    def on_started(self, record: JobRecord, total: int, seed: int | None) -> None:
        if not record.is_final:
            self._send(record, Started(record.job_id, total, seed))

    def on_progress(self, record: JobRecord, step: int, total: int, stage: str) -> None:
        if record.state == STARTED:
            self._send(record, Progress(record.job_id, step, total, stage))

    def on_preview(self, record: JobRecord, index: int, frame: bytes) -> None:
        session = self.sessions.get(record.client_id)
        if session is None or session.outbox is None or record.state != STARTED or index in record.results:
            return  # SPEC.md 10.1: no preview of a batch item after its result
        session.outbox.preview(record.job_id, index, frame)

    def on_result(self, record: JobRecord, index: int, frame: bytes) -> None:
        """A batch item finished while the job runs: its result goes out now (SPEC.md 9.7)."""
        if record.is_final or record.cancel.is_set() or index in record.results:
            return
        self._add_result(record, index, frame)
        session = self.sessions.get(record.client_id)
        if session is not None:
            self._send_frames(session, record)

    def _add_result(self, record: JobRecord, index: int, frame: bytes) -> None:
        after = record.status.advance("result")
        if isinstance(after, ProtocolError):
            log.error("job %s: result %d after the job ended: dropped", record.job_id, index)
            return
        record.status = after
        record.results.add(index)
        record.frames[index] = frame

    # ------------------------------------------------------------------------- scheduling

    async def _run_jobs(self) -> None:
        while True:
            record = self._queue.pop_next() if len(self._running) < self._concurrency else None
            if record is None:
                self._wake.clear()
                await self._wake.wait()  # set by a submit, and by a job that ends and frees its slot
                continue
            self._running.add(record)
            if self._concurrency == 1:
                await self._run_guarded(record)
            else:
                self.spawn(self._run_guarded(record), f"run {record.job_id}")

    async def _run_guarded(self, record: JobRecord) -> None:
        try:
            await self._run_one(record)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive any bug, or accepted jobs would never run
            log.exception("job %s: the scheduler failed around it", record.job_id)
            self._fail_internal(record, "the server failed to run this job")
        finally:
            self._running.discard(record)
            self._wake.set()

    async def _run_one(self, record: JobRecord) -> None:
        record.started_at = time.monotonic()
        self._announce_positions()
        job = record.request
        log.info(
            "job %s start: client %s op %s %dx%d steps %d model %r",
            job.id,
            record.client_id,
            job.op,
            job.region.width,
            job.region.height,
            job.steps,
            job.model,
        )
        try:
            outcome = await self._worker.run(record, self)
        finally:
            self._running.discard(record)
        # Encoding results runs beside the next job, not before it.
        self.spawn(self._complete(record, outcome), f"complete {job.id}")

    async def _complete(self, record: JobRecord, outcome: Outcome) -> None:
        try:
            await self._conclude(record, outcome)
        except Exception:  # whatever broke, the job must end and the client hear it
            log.exception("job %s: finishing failed", record.job_id)
            self._fail_internal(record, "the server failed while finishing this job")

    def _fail_internal(self, record: JobRecord, message: str) -> None:
        if record.is_final:
            return
        self._queue.remove(record.client_id, record.job_id)
        final = Error(ErrorCode.INTERNAL.value, f"{message}; the details are in the server log", None, record.job_id)
        try:
            self._finish(record, final)
        except Exception:
            log.exception("job %s: could not report its failure", record.job_id)
            record.status = JobStatus(record.job_id, ERROR)

    async def _conclude(self, record: JobRecord, outcome: Outcome) -> None:
        job = record.request
        if outcome.output is not None and not record.cancel.is_set():
            try:
                frames = await asyncio.to_thread(encode_results, job, outcome.output, frozenset(record.results))
            except ValueError as exc:
                log.error("job %s: engine output rejected: %s", job.id, exc)
                outcome = Outcome(error=ProtocolError(ErrorCode.INTERNAL, str(exc)), seconds=outcome.seconds)
            except Exception as exc:  # an encoder failure must end this job with an error, not leave it hanging
                log.exception("job %s: encoding the results failed", job.id)
                message = f"encoding the results failed: {type(exc).__name__}: {str(exc)[:200]}"
                outcome = Outcome(error=ProtocolError(ErrorCode.INTERNAL, message), seconds=outcome.seconds)
            else:
                if not record.cancel.is_set():
                    for index, frame in frames.items():
                        self._add_result(record, index, frame)
                    info = json_safe({**outcome.output.info, "seconds": round(outcome.seconds, 3)})
                    done = Done(job.id, len(record.results), tuple(outcome.output.seeds), info)
                    self._log_end(record, "done", outcome.seconds)
                    self._finish(record, done)
                    return
        if outcome.error is not None and not record.cancel.is_set():
            err = outcome.error
            self._log_end(record, f"error {err}", outcome.seconds)
            self._finish(record, Error.from_error(err, job.id))
        else:
            self._log_end(record, "cancelled", outcome.seconds)
            self._finish(record, Cancelled(job.id, record.cancel_reason))

    def _log_end(self, record: JobRecord, how: str, seconds: float) -> None:
        waited = (record.started_at or time.monotonic()) - record.submitted_at
        log.info("job %s %s: %.2fs running, %.2fs queued", record.job_id, how, seconds, waited)

    # ------------------------------------------------------------------------- delivery

    def _finish(self, record: JobRecord, final: Done | Error | Cancelled) -> None:
        if not self._advance(record, final):
            record.status = JobStatus(record.job_id, ERROR)  # never leave a job live because of a bug
        record.final, record.finished_at = final, time.monotonic()
        record.release_inputs()
        for key in record.blob_keys:
            self._blobs.unpin(key)
        session = self.sessions.get(record.client_id)
        if session is None or session.jobs.get(record.job_id) is not record:
            record.frames.clear()  # its session expired: nobody can collect it
            return
        self._retained[record] = None
        self._retained_bytes += record.retained_bytes
        if session.outbox is None:
            self._spool_save(record)  # it waits for a reconnect; a connected client gets it now
        else:
            self._send_final(session, record)  # queued on the connection before the budget can drop it
        self._enforce_retention()

    def _send_frames(self, session: Session, record: JobRecord) -> None:
        """Queue the result frames no connection has taken yet; each is dropped once one has."""
        if session.outbox is None:
            return
        outbox = session.outbox
        for index, frame in sorted(record.frames.items()):
            if record.queued_on.get(index) is not outbox:  # each frame once per connection
                record.queued_on[index] = outbox
                outbox.frame(frame, on_sent=lambda i=index: self._frame_sent(record, i))

    def _frame_sent(self, record: JobRecord, index: int) -> None:
        record.queued_on.pop(index, None)
        frame = record.frames.pop(index, None)
        if frame is not None and record in self._retained:
            self._retained_bytes -= len(frame)
        if self._spool is not None and record.is_final:
            self._spool.drop_frame(record.client_id, record.job_id, index)

    def _send_final(self, session: Session, record: JobRecord) -> None:
        if session.outbox is None:
            return
        self._send_frames(session, record)
        session.send(record.final, on_sent=lambda: self._delivered(session, record))

    def _delivered(self, session: Session, record: JobRecord) -> None:
        if record.delivered:
            return
        record.delivered = True
        self._forget_retained(record)
        if session.jobs.get(record.job_id) is record:
            del session.jobs[record.job_id]

    def _forget_retained(self, record: JobRecord) -> None:
        if record in self._retained:
            del self._retained[record]
            self._retained_bytes -= record.retained_bytes
        record.frames.clear()
        if self._spool is not None and record.is_final:
            self._spool.delete(record.client_id, record.job_id)

    def _enforce_retention(self) -> None:
        """Over budget: drop the oldest undelivered results, leaving an error in their place."""
        while self._retained_bytes > self._retention_bytes and self._retained:
            record = next(iter(self._retained))
            del self._retained[record]
            self._retained_bytes -= record.retained_bytes
            if record.frames:
                log.warning("job %s: undelivered result dropped (retention budget)", record.job_id)
                record.frames.clear()
                record.final = Error(
                    ErrorCode.EXPIRED.value,
                    "the result was dropped before it could be delivered (server memory budget)",
                    None,
                    record.job_id,
                )
                record.status = dataclasses.replace(record.status, state=ERROR)
                session = self.sessions.get(record.client_id)
                if session is not None and session.outbox is None:
                    self._spool_save(record)  # the expired error replaces the result on disk too
