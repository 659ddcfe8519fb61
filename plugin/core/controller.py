"""Drive jobs between a ``Host`` and a ``Client``: capture, plan, upload, submit, show, collect.

The controller owns no event loop and never blocks one. ``submit`` is a coroutine that returns
once the server queued the job; everything after that arrives as client events, handled
synchronously on the loop's thread (the host's UI thread), which is where every ``Host`` method
is called. ``wait``/``run`` are conveniences for callers that want the final record.

Host failures (a layer that cannot be added, ...) end the job with state "error" and a status
line; nothing is swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from latentbrush.protocol import (
    CANCEL_SUPERSEDED,
    RAW_FORMATS,
    JobRequest,
    PreviewHeader,
    Rect,
    ResultHeader,
    Size,
    upscale_rect,
)
from latentbrush.protocol.geometry import relative_to, round_half_up

from . import events as ev
from . import history as hs
from .buffers import crop, swap_red_blue, tighten
from .client import Blob, Client
from .history import History, JobRecord, ResultImage
from .host import Host, Pixels, Selection
from .messages import HOST, MISSING_RESULTS, explain, gave_up_text, op_label, painter_message, reconnecting_text
from .planning import PlanSettings, RegionPlan, plan_box, plan_from_mask, plan_generate, plan_whole_canvas
from .requests import (
    GenerationSettings,
    RequestError,
    TransferFormats,
    build_request,
    choose_operation,
    new_job_id,
    takes_regions,
    validated,
)

log = logging.getLogger("latentbrush.plugin.controller")

COLOR_FORMATS = ("rgba8", "bgra8")
PROMPT_IN_NAME = 40  # characters of the prompt in a layer name


class ControllerError(Exception):
    """The job could not be prepared (nothing to work on, unsupported host format, ...)."""


@dataclass
class _Job:
    op: str
    plan: RegionPlan
    settings: GenerationSettings
    done: asyncio.Future[JobRecord]
    request: JobRequest | None = None
    cancel_requested: bool = False
    canvas_resized: bool = False
    stream: str | None = None  # its live stream: a newer job of the stream supersedes it
    started_at: float | None = None
    results: list[ResultImage] = field(default_factory=list)


def layer_name(op: str, settings: GenerationSettings, seed: int | None) -> str:
    if op == "upscale":
        return f"[Upscaled] {settings.upscaler or 'auto'} x{settings.scale:g}"
    if op == "preprocess":
        control = settings.controls[0] if settings.controls else None
        return f"[Control] {control.mode or control.preprocessor}" if control is not None else "[Control]"
    prompt = " ".join(settings.prompt.split())
    if len(prompt) > PROMPT_IN_NAME:
        prompt = prompt[: PROMPT_IN_NAME - 1] + "…"
    seed_text = f" ({seed})" if seed is not None else ""
    return f"[Generated] {prompt or op}{seed_text}"


def to_host_format(data: bytes, fmt: str, wanted: str) -> bytes:
    """Raw colour pixels in ``wanted`` ("rgba8"/"bgra8"); other formats need a decoder the core lacks."""
    if fmt == wanted:
        return data
    if fmt in COLOR_FORMATS and wanted in COLOR_FORMATS:
        return swap_red_blue(data)
    raise ControllerError(f"cannot convert {fmt} pixels to {wanted}: ask the server for raw frames")


def _unscale(bounds: Rect, sx: float, sy: float) -> Rect:
    x, y = round_half_up(bounds.x / sx), round_half_up(bounds.y / sy)
    return Rect(x, y, max(1, round_half_up(bounds.right / sx) - x), max(1, round_half_up(bounds.bottom / sy) - y))


class Controller:
    """Runs jobs for one document. Construct on the host's thread with a connected ``Client``."""

    def __init__(
        self,
        host: Host,
        client: Client,
        *,
        plan_settings: PlanSettings | None = None,
        history: History | None = None,
        previews: bool = True,
        preview_max_side: int = 512,
    ) -> None:
        if host.pixel_format not in COLOR_FORMATS:
            raise ControllerError(f"host pixel format must be one of {COLOR_FORMATS}, not {host.pixel_format!r}")
        self.host, self.client = host, client
        self.plan_settings = plan_settings or PlanSettings()
        self.history = history if history is not None else History()
        self.previews, self.preview_max_side = previews, preview_max_side
        self._jobs: dict[str, _Job] = {}
        self._previewing: str | None = None
        self._unsubscribe = client.add_listener(self._on_event)

    def close(self) -> None:
        """Stop listening to the client (jobs still running are left to the server)."""
        self._unsubscribe()

    # ----------------------------------------------------------------------------- planning

    def plan(self, op: str | None, settings: GenerationSettings) -> tuple[str, RegionPlan]:
        """Read the canvas and selection and decide the operation and boxes (no I/O besides the host)."""
        op, plan, _ = self._prepare(op, settings)
        return op, plan

    def _prepare(self, op: str | None, settings: GenerationSettings) -> tuple[str, RegionPlan, Selection | None]:
        canvas = self.host.canvas_size()
        if op == "upscale":
            return op, plan_whole_canvas(canvas), None
        selection = self.host.selection()
        if op == "preprocess":  # the selection's box as it is (or the canvas): a control image has no mask
            return op, plan_box(canvas, selection.bounds if selection is not None else Rect.of(canvas)), None
        strength = 1.0 if op == "txt2img" else settings.strength
        if selection is None:
            plan = plan_whole_canvas(canvas)
        else:
            # an explicit Inpaint of a fully selected canvas (Select All) repaints all of it
            plan = plan_from_mask(canvas, selection.data, selection.bounds, strength, self.plan_settings,
                                  outward=settings.blend_outward, whole_canvas_is_selection=op == "inpaint")
        op = op or choose_operation(plan.has_mask, settings.strength)
        if op == "inpaint" and not plan.has_mask:
            raise ControllerError("Inpaint needs a selection: select the area to repaint first")
        if op == "txt2img" and plan.has_mask:
            plan = plan_generate(plan, self.plan_settings)
        return op, plan, selection

    def _formats(self) -> TransferFormats:
        hello = self.client.hello
        wanted = self.host.pixel_format
        preview = wanted if self.previews else "none"
        if hello is not None and preview not in hello.preview_formats:
            preview = "none"
        if hello is not None and wanted not in hello.result_formats:
            offered = ", ".join(hello.result_formats)
            raise ControllerError(f"the server cannot send {wanted} results (it offers {offered})")
        return TransferFormats(preview=preview, result=wanted, preview_max_side=self.preview_max_side)

    @staticmethod
    def _mask_for(plan: RegionPlan, selection: Selection | None) -> bytes | None:
        """The selection's coverage over the context box (zero where the selection has no data)."""
        if not plan.has_mask or selection is None:
            return None
        return crop(selection.data, selection.bounds.size, 1, relative_to(plan.context, selection.bounds))

    # ----------------------------------------------------------------------------- jobs

    async def submit(self, settings: GenerationSettings, op: str | None = None, *,
                     stream: str | None = None) -> JobRecord:
        """Capture, upload and queue one job; returns its record once the server queued it.

        ``op`` None picks inpaint / img2img / txt2img from the selection and strength. ``stream`` (a live
        mode's "live-<doc id>"): the job supersedes the stream's earlier ones, which end "cancelled" with no
        error (SPEC.md 9.11; with a 1.0 server the client cancels them itself).
        Raises ControllerError, RequestError or a ClientError when the job cannot be queued.
        """
        op, plan, selection = self._prepare(op, settings)
        job_id = new_job_id()
        record = self.history.add(JobRecord(job_id, op, settings, plan))
        job = _Job(op, plan, settings, asyncio.get_running_loop().create_future(), stream=stream)
        self._jobs[job_id] = job
        try:
            image, mask = self._capture(op, plan, selection)
            controls = self._capture_controls(op, plan, settings)
            references = self._capture_references(op, settings)
            regions = self._capture_regions(op, plan, settings)
            request = build_request(
                op, plan, settings, job_id=job_id,
                image=image.hash if image else None,
                mask=mask.hash if mask else None,
                formats=self._formats(),
                controls=tuple(c.hash for c in controls),
                references=tuple(r.hash for r in references),
                stream=stream,
                regions=tuple(r.hash for r in regions),
            )
            validated(request, self.client.hello)  # this server's limits and formats, before any upload
            job.request = request
            self.history.update(job_id, request=request, state=hs.SUBMITTED)
            self.host.report_status(f"{op_label(op)}: sending the image to the server", None)
            blobs = [b for b in (image, mask, *controls, *references, *regions) if b is not None]
            position = await self.client.submit(request, blobs)
        except asyncio.CancelledError:  # the session went away mid-upload: no record stays "submitted"
            self._finish(job_id, hs.CANCELLED)
            raise
        except Exception as exc:
            why = explain(exc, op)
            log.warning("%s job %s could not be submitted: %s", op, job_id, why.detail)
            self._finish(job_id, hs.ERROR, error=why.message, error_code=why.code)
            raise
        record = self.history.get(job_id) or record
        if not record.final and record.state in (hs.SUBMITTED, hs.PREPARING):
            record = self.history.update(job_id, state=hs.QUEUED, queue_position=position)
        if job.cancel_requested:
            await self.cancel(job_id)
        return record

    def _capture(self, op: str, plan: RegionPlan, selection: Selection | None) -> tuple[Blob | None, Blob | None]:
        """The context's pixels (not for txt2img) and the selection over it (not for upscale)."""
        w, h = plan.context.width, plan.context.height
        image = None
        if op not in ("txt2img", "preprocess"):
            pixels = self.host.read_pixels(plan.context)
            if pixels.format not in COLOR_FORMATS or pixels.bounds != plan.context or len(pixels.data) != w * h * 4:
                raise ControllerError(f"host returned {pixels.format} pixels of {pixels.bounds}, "
                                      f"expected {self.host.pixel_format} of {plan.context}")
            image = Blob(pixels.data, pixels.format, w, h)
        coverage = self._mask_for(plan, selection) if op not in ("upscale", "preprocess") else None
        mask = Blob(coverage, "gray8", w, h) if coverage is not None else None
        return image, mask

    def _capture_controls(self, op: str, plan: RegionPlan, settings: GenerationSettings) -> tuple[Blob, ...]:
        """Each control layer's pixels over the context (an upscale takes none); a control without a source
        layer (None) reads the visible canvas."""
        if op == "upscale" or not settings.controls:
            return ()
        w, h = plan.context.width, plan.context.height
        blobs = []
        for control in settings.controls:
            if control.source is None:
                pixels = self.host.read_pixels(plan.context)
            else:
                pixels = self.host.read_control(control.source, plan.context)
            if pixels.format not in COLOR_FORMATS or len(pixels.data) != w * h * 4:
                raise ControllerError(f"host returned {pixels.format} control pixels of {pixels.bounds}, "
                                      f"expected {self.host.pixel_format} of {plan.context}")
            blobs.append(Blob(pixels.data, pixels.format, w, h))
        return tuple(blobs)

    def _capture_regions(self, op: str, plan: RegionPlan, settings: GenerationSettings) -> tuple[Blob, ...]:
        """Each region layer's opacity over the context, as a one-channel mask (diffusion operations only)."""
        if not takes_regions(op) or not settings.regions:
            return ()
        w, h = plan.context.width, plan.context.height
        blobs = []
        for region in settings.regions:
            pixels = self.host.read_control(region.source, plan.context)
            if pixels.format not in COLOR_FORMATS or len(pixels.data) != w * h * 4:
                raise ControllerError(f"host returned {pixels.format} region pixels of {pixels.bounds}, "
                                      f"expected {self.host.pixel_format} of {plan.context}")
            blobs.append(Blob(bytes(memoryview(pixels.data)[3::4]), "gray8", w, h))  # alpha: last of 4 bytes
        return tuple(blobs)

    def _capture_references(self, op: str, settings: GenerationSettings) -> tuple[Blob, ...]:
        """Each reference layer's pixels over the whole canvas (a reference is a picture of its own, wherever it
        sits; the server crops it to its opaque part). Diffusion operations only."""
        if op not in ("txt2img", "img2img", "inpaint") or not settings.references:
            return ()
        canvas = self.host.canvas_size()
        w, h = canvas.width, canvas.height
        blobs = []
        for reference in settings.references:
            pixels = self.host.read_control(reference.source, Rect(0, 0, w, h))
            if pixels.format not in COLOR_FORMATS or len(pixels.data) != w * h * 4:
                raise ControllerError(f"host returned {pixels.format} reference pixels of {pixels.bounds}, "
                                      f"expected {self.host.pixel_format} of the {w}x{h} canvas")
            blobs.append(Blob(pixels.data, pixels.format, w, h))
        return tuple(blobs)

    async def wait(self, job_id: str) -> JobRecord:
        """The final record of a job this controller submitted."""
        job = self._jobs.get(job_id)
        if job is None:
            record = self.history.get(job_id)
            if record is None or not record.final:
                raise KeyError(f"unknown job {job_id}")
            return record
        return await asyncio.shield(job.done)

    async def run(self, settings: GenerationSettings, op: str | None = None, *,
                  stream: str | None = None) -> JobRecord:
        """Submit and wait for the final record (state done, error or cancelled)."""
        record = await self.submit(settings, op, stream=stream)
        return await self.wait(record.job_id)

    async def cancel(self, job_id: str | None = None) -> None:
        """Cancel one job, or every job of this controller that is not final.

        Works while the link is down too: the client ends the job here at once (and tells the server
        once it is back), so Cancel never fails and never leaves a preview behind.
        """
        ids = [job_id] if job_id else list(self._jobs)
        for jid in ids:
            job = self._jobs.get(jid)
            record = self.history.get(jid)
            if job is None or record is None or record.final:
                continue
            job.cancel_requested = True  # a painter's cancel, not a supersede
            if record.state in (hs.PREPARING, hs.SUBMITTED):
                continue  # sent once the server has the job
            self.host.report_status(f"{op_label(job.op)}: cancelling", None)
            await self.client.cancel(jid)
            record = self.history.get(jid)
            if not self.client.connected and record is not None and not record.final:
                self._finish(jid, hs.CANCELLED)  # the client did not know it any more: end it here too

    # ----------------------------------------------------------------------------- events

    def _on_event(self, event: ev.ClientEvent) -> None:
        if isinstance(event, ev.ConnectionChanged):
            self._on_connection(event)
            return
        if isinstance(event, (ev.ServerError, ev.ClientFailure)):
            return  # tied to no job
        job_id = event.job_id
        job = self._jobs.get(job_id)
        record = self.history.get(job_id)
        if job is None or record is None or record.final:
            return
        try:
            self._handle(job_id, job, event)
        except Exception as exc:
            log.exception("handling %s for job %s failed", type(event).__name__, job_id)
            self._finish(job_id, hs.ERROR, error=f"{painter_message(HOST, job.op)} ({exc})", error_code=HOST)

    def _on_connection(self, event: ev.ConnectionChanged) -> None:
        if not self._jobs:
            return  # nothing of ours is waiting: the connection panel says it
        if event.state is ev.ConnectionState.RECONNECTING:
            self.host.report_status(reconnecting_text(event.attempt, event.max_attempts, event.retry_in), None)
        elif event.state is ev.ConnectionState.FAILED:
            self.host.report_status(gave_up_text(event.max_attempts), None)
        elif event.state is ev.ConnectionState.CONNECTED and event.attempt:
            self.host.report_status("Reconnected" + (": the job goes on" if event.resumed else ""), None)

    def _handle(self, job_id: str, job: _Job, event: ev.JobEvent) -> None:
        if isinstance(event, ev.JobQueued):
            self.history.update(job_id, state=hs.QUEUED, queue_position=event.position)
            self.host.report_status(f"{op_label(job.op)}: waiting, {event.position} job(s) ahead", None)
        elif isinstance(event, ev.JobStarted):  # repeated after a resume: keep the first time
            job.started_at = job.started_at or time.time()
            self.history.update(job_id, state=hs.STARTED, started=job.started_at, total=event.total,
                                seed=event.seed, queue_position=None)
            self.host.report_status(f"{op_label(job.op)}: started (seed {event.seed})", 0.0)
        elif isinstance(event, ev.JobProgress):
            self.history.update(job_id, step=event.step, total=event.total)
            self.host.report_status(f"{op_label(job.op)}: {event.stage} step {event.step}/{event.total}",
                                    event.step / max(1, event.total))
        elif isinstance(event, ev.JobPreview):
            self._show_preview(job_id, job, event.header, event.payload)
        elif isinstance(event, ev.JobResult):
            self._add_result(job, event.header, event.payload)
            self.history.update(job_id, results=tuple(job.results))
        elif isinstance(event, ev.JobDone):
            self._done(job_id, job, event)
        elif isinstance(event, ev.JobCancelled):
            # superseded: by the server's word, or (1.0 server) the client's cancel this controller never asked for
            superseded = event.reason == CANCEL_SUPERSEDED or (job.stream is not None and not job.cancel_requested)
            self._finish(job_id, hs.CANCELLED, quiet=superseded)
        elif isinstance(event, ev.JobFailed):
            log.warning("%s job %s failed: %s: %s (field %s)", job.op, job_id, event.code, event.message, event.field)
            self._finish(job_id, hs.ERROR, error=painter_message(event.code, job.op, event.field),
                         error_code=event.code)

    def _upscale_factors(self, job: _Job) -> tuple[float, float] | None:
        """Output / region size of an upscale job, None for the other operations."""
        if job.op != "upscale" or job.request is None:
            return None
        out, region = upscale_rect(job.request), job.request.region
        return out.width / region.width, out.height / region.height

    def _show_preview(self, job_id: str, job: _Job, header: PreviewHeader, payload: bytes) -> None:
        if header.format not in RAW_FORMATS:
            return  # an encoded preview this decoder-free core cannot show; results still arrive
        data = to_host_format(payload, header.format, self.host.pixel_format)
        bounds = header.rect
        factors = self._upscale_factors(job)
        if factors is not None:  # upscaled-canvas pixels -> this (not yet resized) canvas
            bounds = _unscale(bounds, *factors)
        size = Size(header.width, header.height)
        self.host.show_preview(Pixels(bounds, self.host.pixel_format, data, None if size == bounds.size else size))
        self._previewing = job_id

    def _add_result(self, job: _Job, header: ResultHeader, payload: bytes) -> None:
        if header.format not in RAW_FORMATS:
            raise ControllerError(f"result arrived as {header.format}; this host needs raw {self.host.pixel_format}")
        data = tighten(payload, header.width, header.height, 4, header.stride)
        data = to_host_format(data, header.format, self.host.pixel_format)
        bounds = header.rect
        factors = self._upscale_factors(job)
        if factors is not None and job.request is not None:
            bounds = upscale_rect(job.request)  # the spec's placement, whatever rect the server sent
            if not job.canvas_resized:  # grow the document first, then lay the result over it
                canvas = job.plan.canvas
                fx, fy = factors
                self.host.resize_canvas(Size(round_half_up(canvas.width * fx), round_half_up(canvas.height * fy)))
                job.canvas_resized = True
        if bounds.size != Size(header.width, header.height):
            raise ControllerError(f"result {header.index} is {header.width}x{header.height}, its box {bounds}")
        name = layer_name(job.op, job.settings, header.seed)
        handle = self.host.add_result_layer(name, Pixels(bounds, self.host.pixel_format, data))
        job.results.append(ResultImage(header.index, header.seed, bounds, name, handle))

    def _done(self, job_id: str, job: _Job, event: ev.JobDone) -> None:
        server = ""
        if self.client.hello is not None:
            server = f"{self.client.hello.server} on {self.client.hello.device}"
        self.history.update(job_id, info=dict(event.info), server=server)
        if len(job.results) != event.results:
            log.warning("job %s: the server reported %d results but %d arrived", job_id, event.results,
                        len(job.results))
            self._finish(job_id, hs.ERROR, error_code=MISSING_RESULTS, error=painter_message(MISSING_RESULTS, job.op))
            return
        seeds = ", ".join(str(r.seed) for r in job.results if r.seed is not None)
        self._finish(job_id, hs.DONE)
        record = self.history.get(job_id)
        took = f" in {record.seconds:.1f} s" if record and record.seconds is not None else ""
        seed_text = f", seed {seeds}" if seeds else ""
        self.host.report_status(f"{op_label(job.op)}: done, {len(job.results)} image(s){took}{seed_text}", 1.0)

    def _finish(self, job_id: str, state: str, *, error: str | None = None, error_code: str | None = None,
                quiet: bool = False) -> None:
        """End the job's record; ``quiet``: no status line (a superseded live job: the newer one reports)."""
        record = self.history.get(job_id)
        job = self._jobs.pop(job_id, None)
        if record is not None and not record.final:
            record = self.history.update(job_id, state=state, finished=time.time(), error=error, error_code=error_code)
        if self._previewing == job_id or (self._previewing is None and not self._jobs):
            self._previewing = None
            try:
                self.host.remove_preview()
            except Exception:
                log.exception("removing the preview failed")
        if state == hs.ERROR:
            self.host.report_status(error or painter_message(error_code, record.op if record else None), None)
        elif state == hs.CANCELLED and not quiet:
            self.host.report_status("Cancelled", None)
        if job is not None and not job.done.done() and record is not None:
            job.done.set_result(record)


__all__ = ["Controller", "ControllerError", "RequestError", "layer_name", "to_host_format"]
