"""What every CLI command shares: connecting (to ``--url`` or a ``--local`` child server),
running one job on a headless host, and writing results and preview frames to disk."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from latentbrush.plugin.core.client import Client, ReconnectPolicy
from latentbrush.plugin.core.controller import Controller
from latentbrush.plugin.core.history import JobRecord
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import Rect, clamp
from latentbrush.protocol.transport import DEFAULT_URL
from PIL import Image

from .local_server import LocalServer
from .progress import ProgressBar

CLI_RECONNECT = ReconnectPolicy(initial_delay=0.25, max_delay=5.0, max_attempts=12)


@dataclass(frozen=True)
class ConnectOptions:
    url: str | None = None
    token: str | None = None
    token_file: str | None = None
    local: bool = False
    models: str | None = None
    device: str | None = None


@contextlib.asynccontextmanager
async def connected(options: ConnectOptions, *, verbose: bool = True) -> AsyncIterator[Client]:
    """A connected client; with ``local`` a child server is started first and stopped after."""
    server: LocalServer | None = None
    url, token_file = options.url or DEFAULT_URL, options.token_file
    try:
        if options.local:
            server = LocalServer(models_dir=options.models, device=options.device)
            started = time.monotonic()
            url = await server.start()
            token_file = server.token_file
            if verbose:
                print(f"local server at {url} ({time.monotonic() - started:.1f} s to start)", file=sys.stderr)
        client = Client(url, token=options.token, token_file=token_file, client_name="latentbrush-cli/0.1",
                        reconnect=CLI_RECONNECT)
        await client.connect()
        try:
            yield client
        finally:
            await client.close()
    finally:
        if server is not None:
            await server.stop()


@dataclass
class PreviewWriter:
    """Saves every preview frame as the painter would see it: stretched over its box, on the canvas."""

    folder: Path | None
    prefix: str
    host: HeadlessHost | None = None
    paths: list[Path] = field(default_factory=list)

    def __call__(self, number: int, image: Image.Image, bounds: Rect) -> None:
        if self.folder is None or self.host is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        view = self.host.canvas.copy()
        stretched = image.convert("RGBA").resize((bounds.width, bounds.height), Image.Resampling.BILINEAR)
        clip = None
        if self.host.mask is not None:
            clip = self.host.mask.crop((bounds.x, bounds.y, bounds.right, bounds.bottom))
        elif self.host.rect is not None:
            box = clamp(self.host.rect, self.host.canvas_size())
            clip = Image.new("L", (bounds.width, bounds.height), 0)
            clip.paste(255, (box.x - bounds.x, box.y - bounds.y, box.right - bounds.x, box.bottom - bounds.y))
        view.paste(stretched, (bounds.x, bounds.y), clip)
        path = self.folder / f"{self.prefix}-{number:03d}.png"
        view.save(path)
        self.paths.append(path)


async def run_job(
    client: Client, host: HeadlessHost, op: str, settings: GenerationSettings, *,
    label: str, show_progress: bool = True, previews: bool = True, preview_max_side: int = 512,
) -> JobRecord:
    """Run one job to its end on ``host``; the record says done, error or cancelled."""
    bar = ProgressBar(label, enabled=show_progress)
    remove = client.add_listener(bar)
    controller = Controller(host, client, previews=previews, preview_max_side=preview_max_side)
    try:
        return await controller.run(settings, op)
    finally:
        controller.close()
        remove()


def output_paths(output: Path, count: int, layer_out: Path | None) -> list[tuple[Path, Path]]:
    """(composite, layer) paths per result: out.png + out.layer.png, then out.2.png + out.2.layer.png ..."""
    pairs = []
    for i in range(count):
        tag = "" if i == 0 else f".{i + 1}"
        composite = output.with_name(f"{output.stem}{tag}{output.suffix or '.png'}")
        if layer_out is not None:
            layer = layer_out.with_name(f"{layer_out.stem}{tag}{layer_out.suffix or '.png'}")
        else:
            layer = output.with_name(f"{output.stem}{tag}.layer.png")
        pairs.append((composite, layer))
    return pairs


def write_results(host: HeadlessHost, output: Path, layer_out: Path | None = None) -> list[Path]:
    """Each result layer composited onto the canvas, and the layer itself as a canvas-sized RGBA PNG."""
    written: list[Path] = []
    for layer, (composite_path, layer_path) in zip(host.layers, output_paths(output, len(host.layers), layer_out),
                                                    strict=True):
        composite_path.parent.mkdir(parents=True, exist_ok=True)
        layer_path.parent.mkdir(parents=True, exist_ok=True)
        host.composite([layer]).save(composite_path)
        host.layer_on_canvas(layer).save(layer_path)
        written += [composite_path, layer_path]
    return written
