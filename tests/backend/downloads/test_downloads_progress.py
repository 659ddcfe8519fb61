"""Progress reports: at most five a second, each file's first and last always, as JSON lines a GUI parses."""

from __future__ import annotations

import io
import json

from latentbrush.backend.downloads.progress import JsonLines, Progress, TextLine, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_allows_five_a_second_and_forced_ones():
    clock = Clock()
    throttle = Throttle(5, clock)
    allowed = 0
    for _ in range(100):  # 100 reports over one second
        allowed += throttle.ready()
        clock.now += 0.01
    assert allowed == 5
    assert throttle.ready(force=True)


def test_json_lines_keep_first_and_last_of_each_file():
    out = io.StringIO()
    lines = JsonLines(out, Throttle(5, Clock()))  # a clock that never moves: only forced reports pass
    for done in range(0, 1001, 10):
        lines.progress(Progress("a.safetensors", done, 1000, done, 1500))
    for done in range(0, 501, 50):
        lines.progress(Progress("b.safetensors", done, 500, 1000 + done, 1500))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["file"], e["done_bytes"]) for e in events] == [
        ("a.safetensors", 0), ("a.safetensors", 1000), ("b.safetensors", 0), ("b.safetensors", 500)]
    assert events[-1] == {"event": "progress", "file": "b.safetensors", "done_bytes": 500, "total_bytes": 500,
                          "overall_done": 1500, "overall_total": 1500}


def test_text_line_without_a_terminal_prints_finished_files():
    out = io.StringIO()
    line = TextLine(out, Throttle(5, Clock()))
    for done in (0, 500_000, 1_000_000):
        line.progress(Progress("upscale/x.pth", done, 1_000_000, done, 2_000_000))
    assert out.getvalue() == "upscale/x.pth: 1.0 MB of 1.0 MB; all: 1.0 MB of 2.0 MB (50%)\n"
