"""What the painter reads: one table from error codes (protocol and plugin) to plain-words messages.

Every message says what happened and what to do, in the UI's words (Generate, Refine, Inpaint,
Upscale, Restart, Reconnect). The technical detail (errno, exception class, protocol field) goes to
the log, never into these texts. ``painter_message`` looks a code up; ``explain`` turns an exception
the client, the request builder or a host raised into ``(code, message)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from latentbrush.protocol.errors import ErrorCode

from .connection import ConnectError, ConnectionLost, NotConnected, RequestRefused, RequestTimeout
from .events import CONNECTION_LOST, LOST_JOB, SERVER_STOPPED

# The UI's name of each protocol operation (the docker's buttons, GIMP's menu entries).
OPERATION_LABELS = {"txt2img": "Generate", "img2img": "Refine", "inpaint": "Inpaint", "upscale": "Upscale",
                    "preprocess": "Control image"}

# Which setting a protocol field path is about, as the docker labels it.
FIELD_LABELS = {
    "job.steps": "Steps", "job.batch": "Batch", "job.cfg": "Guidance", "job.seed": "Seed",
    "job.strength": "Strength", "job.model": "Model", "job.sampler": "Sampler", "job.prompt": "Prompt",
    "job.negative_prompt": "Negative prompt", "job.mask_outward": "Blend outward", "job.upscale.scale": "Scale",
    "job.upscale.upscaler": "Upscaler", "job.region": "the selected area", "job.context": "the selected area",
    "job.canvas": "the image size",
}

# Codes the plugin adds to the protocol's (``ErrorCode``) for what happens on this side (the client's
# JobFailed codes CONNECTION_LOST, SERVER_STOPPED and LOST_JOB live in ``events``).
DISCONNECTED = "disconnected"  # the painter closed the connection while a job ran
NOT_CONNECTED = "not_connected"
CONNECT_FAILED = "connect_failed"
TIMEOUT = "timeout"
HOST = "host"  # the painting app refused a write (a locked layer stack, ...)
MISSING_RESULTS = "missing_results"

# code -> message. {op}: the operation's UI name; {setting}: the setting a refusal names.
MESSAGES: dict[str, str] = {
    SERVER_STOPPED: "The local server stopped, so this {op} job ended. Press Restart, then {op} again.",
    CONNECTION_LOST: "The connection to the server was lost and did not come back, so this {op} job ended. "
                     "Check that the server runs, then press {op} again.",
    DISCONNECTED: "You disconnected from the server, so this {op} job stopped.",
    LOST_JOB: "The server restarted or forgot this {op} job. Press {op} again.",
    NOT_CONNECTED: "Not connected to a server. Start the local server or connect to one, then press {op} again.",
    CONNECT_FAILED: "Cannot reach the server. Check that it runs and the address is right, then press Reconnect.",
    TIMEOUT: "The server did not answer in time. Press {op} again; if it keeps happening, restart the server.",
    HOST: "The result could not be added to the image. Unlock the layers or open another image, then press {op} again.",
    MISSING_RESULTS: "The server sent fewer images than it promised. Press {op} again.",
    ErrorCode.TOO_LARGE.value: "{setting} is more than this server allows. Lower it, then press {op} again.",
    ErrorCode.BAD_FIELD.value: "{setting} has a value this server does not accept. Change it, then press {op} again.",
    ErrorCode.MISSING_FIELD.value: "{setting} is missing. Fill it in, then press {op} again.",
    ErrorCode.UNKNOWN_MODEL.value: "The server does not have this model. Pick another Model, then press {op} again.",
    ErrorCode.UNKNOWN_UPSCALER.value: "The server does not have this upscaler. Pick another one, then press Upscale.",
    ErrorCode.UNKNOWN_SAMPLER.value: "The server does not know this sampler. Pick another one, then press {op} again.",
    ErrorCode.QUEUE_FULL.value: "The server is busy with other jobs. Wait a moment, then press {op} again.",
    ErrorCode.OUT_OF_MEMORY.value: "The graphics card ran out of memory. Select a smaller area or lower Batch, "
                                   "then press {op} again.",
    ErrorCode.NOT_SUPPORTED.value: "This server or model cannot do {op} with these settings. "
                                   "Pick another model or change the settings.",
    ErrorCode.OUT_OF_BOUNDS.value: "The selected area lies outside the image. Select inside the image, "
                                   "then press {op} again.",
    ErrorCode.EXPIRED.value: "The server dropped this job's result before it could be fetched. Press {op} again.",
    ErrorCode.UNAUTHORIZED.value: "The server refused the token. Use the token of this server "
                                  "(or leave it blank for a local one), then press Reconnect.",
    ErrorCode.FORBIDDEN_ORIGIN.value: "The server refused this address. Connect with the address the server "
                                      "printed, then press Reconnect.",
    ErrorCode.VERSION_MISMATCH.value: "The plugin and the server are different versions. Install matching versions.",
    ErrorCode.INTERNAL.value: "The server hit an error while running {op}. Press {op} again; "
                              "the log has the details.",
}
FALLBACK = "{op} did not work. Press {op} again; the log has the details."
UNEXPECTED = "Something went wrong in latentbrush. The log has the details; if it keeps happening, restart the server."


@dataclass(frozen=True)
class Explained:
    code: str
    message: str  # for the painter
    detail: str  # for the log


# what a history row says of a job that is not done (the lifecycle's names are the protocol's)
STATE_LABELS = {"preparing": "preparing", "submitted": "sending", "queued": "waiting", "started": "running",
                "error": "failed", "cancelled": "cancelled", "done": "done"}


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def op_label(op: str | None) -> str:
    """The UI's name of an operation ("img2img" -> "Refine"); unknown names pass through."""
    return OPERATION_LABELS.get(op or "", op or "the job")


def setting_label(field: str | None) -> str:
    if not field:
        return "A setting"
    for prefix in sorted(FIELD_LABELS, key=len, reverse=True):  # "job.region.width" -> "job.region"
        if field == prefix or field.startswith(prefix + "."):
            return FIELD_LABELS[prefix]
    return "A setting"


def painter_message(code: str | None, op: str | None = None, field: str | None = None) -> str:
    """The plain-words message for ``code`` (a protocol ``ErrorCode`` value or one of this module's)."""
    template = MESSAGES.get(code or "", FALLBACK)
    text = template.format(op=op_label(op), setting=setting_label(field))
    return text[0].upper() + text[1:]


def general_message(code: str | None, field: str | None = None) -> str:
    """For an error tied to no job (a server error event, a client failure): no operation to name."""
    template = MESSAGES.get(code or "")
    return UNEXPECTED if template is None or "{op}" in template else painter_message(code, None, field)


def explain(exc: BaseException, op: str | None = None) -> Explained:
    """``exc`` as a code, a painter message and the technical detail for the log.

    Exceptions whose text is already written for the painter (``ControllerError``, ``UnsupportedDocument``:
    "Inpaint needs a selection: ...") keep it: they are not client errors and carry no code.
    """
    detail = f"{type(exc).__name__}: {exc}"
    error = getattr(exc, "error", None)
    code = getattr(getattr(error, "code", None), "value", getattr(error, "code", None))
    if isinstance(exc, RequestRefused) or (code is not None and code in MESSAGES):
        return Explained(str(code), painter_message(str(code), op, getattr(error, "field", None)), detail)
    if isinstance(exc, NotConnected):
        return Explained(NOT_CONNECTED, painter_message(NOT_CONNECTED, op), detail)
    if isinstance(exc, ConnectionLost):
        return Explained(CONNECTION_LOST, painter_message(CONNECTION_LOST, op), detail)
    if isinstance(exc, ConnectError):
        return Explained(CONNECT_FAILED, painter_message(CONNECT_FAILED, op), detail)
    if isinstance(exc, ConnectionError):  # refused / reset before the client wrapped it
        return Explained(CONNECT_FAILED, painter_message(CONNECT_FAILED, op), detail)
    if isinstance(exc, (TimeoutError, RequestTimeout)):
        return Explained(TIMEOUT, painter_message(TIMEOUT, op), detail)
    return Explained(type(exc).__name__, str(exc) or painter_message(None, op), detail)


def reconnecting_text(attempt: int, max_attempts: int | None, retry_in: float | None) -> str:
    """The connection line while the link is down: what is happening, and when the next try is."""
    of = f" of {max_attempts}" if max_attempts else ""
    when = f" in {max(1, round(retry_in))} s" if retry_in else " now"
    return f"Connection lost. Trying again{when} (attempt {max(1, attempt)}{of})…"


def gave_up_text(max_attempts: int | None) -> str:
    tries = f" after {max_attempts} tries" if max_attempts else ""
    return f"Cannot reach the server{tries}. Check that it runs, then press Reconnect."


def server_stopped_text(exit_code: int | None, crashed: bool) -> str:
    how = "crashed" if crashed else "stopped"
    code = f" (exit code {exit_code})" if exit_code is not None and not crashed else ""
    return f"The local server {how}{code}. Press Restart to start it again; the log has its last lines."
