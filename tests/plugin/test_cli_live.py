"""``latentbrush live --watch``: a real subprocess, a real local server, the tiny model."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from PIL import Image

LINE_GUARD_S = 600.0  # only turns a hang into a failure (the local server may take minutes to start)


def picture(rgb: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGBA", (64, 64), (*rgb, 255))
    image.paste((rgb[2], rgb[0], rgb[1], 255), (40, 40, 56, 56))  # not solid: versions differ in size too
    return image


def save(image: Image.Image, path: Path) -> bytes:
    image.save(path.with_suffix(".tmp.png"))
    data = path.with_suffix(".tmp.png").read_bytes()
    path.write_bytes(data)
    return data


class Lines:
    """The process's output lines, read on a thread so the test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str) -> str:
        for line in self.seen:
            if text in line:
                return line
        while True:
            line = self._queue.get(timeout=LINE_GUARD_S)
            if line is None:
                raise AssertionError(f"the process ended before printing {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line


def test_live_reruns_on_each_change_and_the_newest_version_wins(tmp_path):
    watched = tmp_path / "in.png"
    save(picture((200, 30, 30)), watched)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentbrush.plugin.cli", "live", "--watch", str(watched), "-o", "out.png",
         "--rect", "0,0,32,64", "-p", "a cat", "--steps", "30", "--strength", "0.9", "--seed", "5",
         "--interval", "0.02", "--debounce", "0.05", "--local"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = Lines(proc)
    try:
        lines.wait_for("live: v1 done")
        full = picture((30, 200, 30))
        data = save(full, tmp_path / "v2.png")
        watched.write_bytes(data[: len(data) // 2])  # an app caught mid-save: read again, never a failure
        lines.wait_for("not a readable image yet")
        watched.write_bytes(data)
        lines.wait_for("live: v2 sent")
        last = picture((30, 30, 200))
        save(last, watched)  # at once: v2 (30 steps) is still waiting or running when v3 is seen (~0.1 s)
        lines.wait_for("live: v3 done")
        lines.wait_for("live: v2 superseded")
        out = Image.open(tmp_path / "out.png").convert("RGBA")
        # right of the 32-pixel-wide selection the composite is the watched file itself: the last version's
        assert out.getpixel((60, 10)) == last.getpixel((60, 10))
        assert out.getpixel((48, 48)) == last.getpixel((48, 48))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        lines.wait_for("live: stopped")
    finally:
        if proc.poll() is None:
            proc.terminate()  # like Ctrl+C: the CLI stops its local server first
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not [line for line in lines.seen if "failed" in line or "Traceback" in line], lines.seen
    results = [line for line in lines.seen if line.startswith("live: v") and " sent" not in line]
    assert len(results) == 3, results  # one line per job, each with its latency
    assert all(" s" in line for line in results)


def test_a_missing_or_unreadable_file_is_a_usage_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    for name in ("missing.png", "broken.png"):
        done = subprocess.run([sys.executable, "-m", "latentbrush.plugin.cli", "live", "--watch", name,
                               "--url", "ws://127.0.0.1:9"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        assert name in done.stderr
