"""``latentbrush live --watch FILE``: repaint whenever FILE changes, the newest version always winning.

Works with any painting app that saves to a file. Each version of FILE is one job of the same live
stream (SPEC.md 9.11), so a newer version supersedes the job of an older one that is still waiting or
running; the server keeps the stream's model, prompt embeddings and blobs warm. A change is seen by
polling the file's size and mtime; it counts once they have stayed the same for the debounce time and
the image can be read (an app still writing it gives a truncated file: read again at the next poll).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.client import Client, ClientError
from latentbrush.plugin.core.controller import Controller, ControllerError
from latentbrush.plugin.core.history import JobRecord
from latentbrush.plugin.core.requests import GenerationSettings, RequestError
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import Rect
from PIL import Image, UnidentifiedImageError

from .commands import (
    InputError,
    connect_options,
    control_images,
    control_specs,
    load_image,
    reference_specs,
    settings_from,
)
from .main import EXIT_OK
from .session import connected, write_results
from .style_command import chosen_style, with_style

LIVE_OPS = {"img2img": "img2img", "inpaint": "inpaint", "generate": "txt2img"}
STREAM = "cli-live"


@dataclass(frozen=True)
class Version:
    """One readable state of the watched file."""

    number: int
    image: Image.Image
    changed_at: float  # time.monotonic() when the change was first seen


def file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:  # being replaced (write to a temporary, rename) or not there yet
        return None
    return st.st_mtime_ns, st.st_size


def read_image(path: Path) -> Image.Image | None:
    """The file as RGBA, or None while it is not a complete image yet."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):  # Pillow raises all of these on a cut file
        return None


class Watcher:
    """Yields a ``Version`` each time the file changed, settled and reads as an image."""

    def __init__(self, path: Path, interval: float, debounce: float, notice: Callable[[str], None]) -> None:
        self.path, self.interval, self.debounce, self.notice = path, interval, debounce, notice
        self._seen: tuple[int, int] | None = None  # the signature of the last version handed out
        self._unreadable: tuple[int, int] | None = None  # the last signature that did not read as an image
        self._count = 0

    async def next(self) -> Version:
        changed_at: float | None = None
        while True:
            signature = file_signature(self.path)
            if signature is None or signature == self._seen:
                await asyncio.sleep(self.interval)
                continue
            changed_at = changed_at or time.monotonic()
            await asyncio.sleep(self.debounce)
            if file_signature(self.path) != signature:
                continue  # still being written
            image = read_image(self.path)
            if image is None:
                if signature != self._unreadable:
                    self._unreadable = signature
                    self.notice(f"{self.path.name} is not a readable image yet; waiting for the next save")
                await asyncio.sleep(self.interval)  # settled but unreadable: read again at the next poll
                continue
            self._seen = signature
            self._count += 1
            return Version(self._count, image, changed_at)


class LiveRun:
    """Submits each version as the stream's newest job and reports each job as it ends."""

    def __init__(self, client: Client, args: argparse.Namespace, settings: GenerationSettings) -> None:
        self.client, self.args, self.settings = client, args, settings
        self.op = LIVE_OPS[args.op]
        self.output = Path(args.output) if args.output else Path(args.watch).with_name(
            f"{Path(args.watch).stem}-live.png")
        self.layer_out = Path(args.layer_out) if args.layer_out else None
        self.written = 0  # the newest version whose result is on disk
        self.tasks: set[asyncio.Task[None]] = set()
        self.controllers: set[Controller] = set()

    def host_for(self, image: Image.Image) -> HeadlessHost:
        mask = rect = None
        if self.args.mask:
            mask = load_image(self.args.mask, "mask image", "L")
            if mask.size != image.size:
                raise InputError(f"mask {self.args.mask} is {mask.size[0]}x{mask.size[1]}, the file is "
                                 f"{image.size[0]}x{image.size[1]} now")
        elif self.args.rect:
            rect = Rect(*self.args.rect)
        return HeadlessHost(image, mask=mask, rect=rect)

    async def submit(self, version: Version) -> None:
        try:
            host = self.host_for(version.image)
        except InputError as exc:
            self.say(f"v{version.number} skipped: {exc}")
            return
        controller = Controller(host, self.client, previews=False)
        try:
            record = await controller.submit(self.settings, self.op, stream=STREAM)
        except (RequestError, ControllerError, ClientError) as exc:
            controller.close()
            self.say(f"v{version.number} not submitted: {exc}")
            return
        self.controllers.add(controller)
        if not self.args.quiet:
            print(f"live: v{version.number} sent", file=sys.stderr, flush=True)
        task = asyncio.get_running_loop().create_task(self.report(version, controller, host, record))
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.say(f"reporting a result failed: {task.exception()!r}")

    async def report(self, version: Version, controller: Controller, host: HeadlessHost, record: JobRecord) -> None:
        try:
            record = await controller.wait(record.job_id)
        finally:
            controller.close()
            self.controllers.discard(controller)
        latency = time.monotonic() - version.changed_at
        if record.state == hs.CANCELLED:
            self.say(f"v{version.number} superseded after {latency:.2f} s")
        elif record.state != hs.DONE:
            self.say(f"v{version.number} failed after {latency:.2f} s: {record.error or record.state}")
        elif version.number < self.written:
            self.say(f"v{version.number} done after {latency:.2f} s, older than v{self.written}: not written")
        else:
            paths = write_results(host, self.output, self.layer_out)
            self.written = version.number
            seeds = ", ".join(str(s) for s in record.seeds) or "-"
            self.say(f"v{version.number} done {latency:.2f} s after the change, seed {seeds}: "
                     f"{' '.join(str(p) for p in paths)}")

    async def stop(self) -> None:
        """Ctrl+C: cancel what still runs (best effort; a local server stops anyway), stop reporting."""
        for controller in list(self.controllers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(controller.cancel(), 2.0)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @staticmethod
    def say(line: str) -> None:
        print(f"live: {line}", flush=True)


async def run_live(args: argparse.Namespace) -> int:
    watch = Path(args.watch)
    if not watch.exists():
        raise InputError(f"{watch} does not exist (save the picture once, then watch it)")
    first = read_image(watch)
    if first is None:
        raise InputError(f"{watch} is not a readable image")
    settings = replace(settings_from(args), references=reference_specs(args, first))
    style = chosen_style(args)  # an unknown name fails before connecting
    controls = control_images(args, first)
    def notice(text: str) -> None:
        if not args.quiet:
            print(f"live: {text}", file=sys.stderr, flush=True)

    watcher = Watcher(watch, args.interval, args.debounce, notice)
    main = asyncio.current_task()
    if main is not None and hasattr(signal, "SIGTERM"):
        with contextlib.suppress(NotImplementedError):  # Windows: no loop signal handlers; Ctrl+C still works
            # a kill ends it like Ctrl+C: the local server is stopped, not left running
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with connected(connect_options(args), verbose=not args.quiet) as client:
        if controls:
            offered = client.hello.preprocessors if client.hello is not None else ()
            settings = replace(settings, controls=control_specs(controls, offered))
        settings = with_style(args, settings, style, client.hello)  # its live block
        live = LiveRun(client, args, settings)
        if not args.quiet:
            print(f"live: watching {watch} (Ctrl+C stops)", file=sys.stderr, flush=True)
        try:
            while True:
                await live.submit(await watcher.next())
        finally:
            await live.stop()
    return EXIT_OK


def run_live_command(args: argparse.Namespace) -> int:
    """Ctrl+C (or SIGTERM) is how a live session ends: a clean stop, exit code 0."""
    try:
        return asyncio.run(run_live(args))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl+C, or SIGTERM
        print("live: stopped", file=sys.stderr, flush=True)
        return EXIT_OK


__all__ = ["LIVE_OPS", "STREAM", "LiveRun", "Version", "Watcher", "run_live", "run_live_command"]
