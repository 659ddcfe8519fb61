"""The one table from error codes and exceptions to what the painter reads (plugin/core/messages.py)."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core import messages as m
from latentbrush.plugin.core.connection import (
    ConnectError,
    ConnectionLost,
    NotConnected,
    RequestRefused,
    RequestTimeout,
)
from latentbrush.plugin.core.requests import RequestError
from latentbrush.protocol import Error
from latentbrush.protocol.errors import ErrorCode, ProtocolError

INTERNAL_WORDS = ("txt2img", "img2img", "Errno", "NotConnected", "job.steps", "_", "Traceback", "{", "}")


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint", "upscale"])
@pytest.mark.parametrize("code", [*m.MESSAGES, "some_future_code", None])
def test_every_message_is_in_plain_words_and_names_the_operation_as_the_ui_does(code, op):
    text = m.painter_message(code, op, "job.steps")
    assert text[0].isupper() and text.endswith((".", "!"))
    assert not any(word in text for word in INTERNAL_WORDS), text
    if "{op}" in m.MESSAGES.get(code or "", m.FALLBACK):
        assert m.OPERATION_LABELS[op] in text


def test_the_ui_names_of_operations():
    assert [m.op_label(op) for op in ("txt2img", "img2img", "inpaint", "upscale")] == [
        "Generate", "Refine", "Inpaint", "Upscale"]


def test_a_refusal_names_the_setting_in_the_dockers_words():
    assert m.painter_message("too_large", "inpaint", "job.steps") == (
        "Steps is more than this server allows. Lower it, then press Inpaint again.")
    assert m.setting_label("job.region.width") == "the selected area"
    assert m.painter_message("too_large", "inpaint", "job.region.width").startswith("The selected area is more")


def test_the_codes_the_client_ends_jobs_with_say_what_to_do():
    assert "Restart" in m.painter_message(ev.SERVER_STOPPED, "inpaint")
    assert "lost" in m.painter_message(ev.CONNECTION_LOST, "txt2img")
    assert "Press Generate again" in m.painter_message(ev.LOST_JOB, "txt2img")


@pytest.mark.parametrize(("exc", "code"), [
    (NotConnected("not connected to ws://x (reconnecting)"), m.NOT_CONNECTED),
    (ConnectionLost("connection lost while sending: ConnectionResetError(104)"), ev.CONNECTION_LOST),
    (ConnectError("cannot connect to ws://127.0.0.1:1: [Errno 111] Connect call failed"), m.CONNECT_FAILED),
    (ConnectionRefusedError(111, "Connect call failed"), m.CONNECT_FAILED),
    (RequestTimeout("no answer from the server within 60 s"), m.TIMEOUT),
    (RequestRefused(Error("too_large", "steps 150 > 100", "job.steps")), "too_large"),
    (RequestError(ProtocolError(ErrorCode.TOO_LARGE, "steps 150 > 100", "job.steps")), "too_large"),
    (ConnectError("refused: unauthorized: bad token", fatal=True, error=Error("unauthorized", "bad")), "unauthorized"),
])
def test_exceptions_become_a_code_a_message_and_the_detail_for_the_log(exc, code):
    why = m.explain(exc, "inpaint")
    assert why.code == code
    assert why.message == m.painter_message(code, "inpaint", getattr(getattr(exc, "error", None), "field", None))
    assert str(exc) in why.detail and type(exc).__name__ in why.detail


def test_an_exception_already_worded_for_the_painter_keeps_its_text():
    why = m.explain(ValueError("Inpaint needs a selection: select the area to repaint first"), "inpaint")
    assert why.message == "Inpaint needs a selection: select the area to repaint first"


def test_connection_lines_count_down_and_say_what_to_press():
    assert m.reconnecting_text(2, 8, 3.2) == "Connection lost. Trying again in 3 s (attempt 2 of 8)…"
    assert m.reconnecting_text(1, None, None) == "Connection lost. Trying again now (attempt 1)…"
    assert "Reconnect" in m.gave_up_text(8) and "8 tries" in m.gave_up_text(8)
    assert "Restart" in m.server_stopped_text(-9, crashed=True) and "crashed" in m.server_stopped_text(-9, True)
    assert "exit code 3" in m.server_stopped_text(3, crashed=False)
