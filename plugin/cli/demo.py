"""``latentbrush demo``: draw a sample picture, then inpaint, refine, generate and upscale it through
a real server over the real socket, and write every input, result and preview frame to a folder.

The picture is drawn here with Pillow (sky gradient, hills, sun), so the demo needs no files.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import Rect
from PIL import Image, ImageDraw

from .main import EXIT_JOB_FAILED, EXIT_OK
from .session import ConnectOptions, PreviewWriter, connected, run_job, write_results

SCENE_SIZE = (256, 192)
SUN_BOX = (168, 24, 216, 72)  # the sun's bounding box; the inpaint mask covers it with a margin


def draw_scene(size: tuple[int, int] = SCENE_SIZE) -> Image.Image:
    """A landscape: vertical sky gradient, sun, two layers of hills, a little house."""
    w, h = size
    image = Image.new("RGBA", size)
    draw = ImageDraw.Draw(image)
    for y in range(h):  # sky: deep blue at the top to pale near the horizon
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=(int(40 + 150 * t), int(90 + 120 * t), int(200 + 40 * t), 255))
    draw.ellipse(_scaled(SUN_BOX, size), fill=(255, 214, 80, 255))
    far = [(0, 0.62), (0.2, 0.52), (0.45, 0.6), (0.7, 0.48), (1.0, 0.58), (1.0, 1.0), (0, 1.0)]
    near = [(0, 0.8), (0.3, 0.68), (0.6, 0.78), (0.85, 0.7), (1.0, 0.76), (1.0, 1.0), (0, 1.0)]
    draw.polygon([(x * w, y * h) for x, y in far], fill=(70, 130, 80, 255))
    draw.polygon([(x * w, y * h) for x, y in near], fill=(50, 105, 55, 255))
    house = (int(0.22 * w), int(0.64 * h), int(0.32 * w), int(0.74 * h))
    draw.rectangle(house, fill=(200, 170, 130, 255))
    draw.polygon([(house[0] - 3, house[1]), ((house[0] + house[2]) / 2, house[1] - 10), (house[2] + 3, house[1])],
                 fill=(150, 60, 50, 255))
    return image


def draw_mask(size: tuple[int, int] = SCENE_SIZE, margin: int = 6) -> Image.Image:
    """White over the sun (and a margin), black elsewhere: the part inpaint repaints."""
    mask = Image.new("L", size, 0)
    x0, y0, x1, y1 = _scaled(SUN_BOX, size)
    ImageDraw.Draw(mask).ellipse((x0 - margin, y0 - margin, x1 + margin, y1 + margin), fill=255)
    return mask


def _scaled(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    sx, sy = size[0] / SCENE_SIZE[0], size[1] / SCENE_SIZE[1]
    return round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)


@dataclass(frozen=True)
class DemoStep:
    name: str  # also the file stem
    op: str
    settings: GenerationSettings
    masked: bool = False
    rect: Rect | None = None


def demo_steps(steps: int) -> tuple[DemoStep, ...]:
    return (
        DemoStep("inpaint", "inpaint", GenerationSettings(prompt="a full moon, night sky", steps=steps, seed=1),
                 masked=True),
        DemoStep("img2img", "img2img", GenerationSettings(prompt="oil painting of hills at dusk", steps=steps,
                                                          strength=0.5, seed=2)),
        DemoStep("generate", "txt2img", GenerationSettings(prompt="a castle on a hill", steps=steps, seed=3),
                 rect=Rect(96, 64, 96, 80)),
        DemoStep("upscale", "upscale", GenerationSettings(upscaler="lanczos", scale=2.0)),
    )


async def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    scene, mask = draw_scene(), draw_mask()
    scene.save(out / "input.png")
    mask.save(out / "mask.png")
    files = [out / "input.png", out / "mask.png"]
    timings: list[tuple[str, float, str]] = []
    options = ConnectOptions(url=args.url, token=args.token, token_file=args.token_file, local=args.url is None,
                             models=args.models, device=args.device)
    started = time.monotonic()
    async with connected(options, verbose=not args.quiet) as client:
        timings.append(("connect", time.monotonic() - started, client.url))
        for step in demo_steps(args.steps):
            host = HeadlessHost(scene.copy(), mask=mask if step.masked else None, rect=step.rect)
            writer = PreviewWriter(out / "previews", step.name, host)
            host.preview_sink = writer
            t0 = time.monotonic()
            record = await run_job(client, host, step.op, step.settings, label=step.name,
                                   show_progress=not args.quiet, preview_max_side=256)
            seconds = time.monotonic() - t0
            if record.state != hs.DONE:
                say(f"demo: {step.name} ended {record.state}: {record.error}")
                return EXIT_JOB_FAILED
            files += write_results(host, out / f"{step.name}.png") + writer.paths
            timings.append((step.name, seconds, f"{len(writer.paths)} previews, seed "
                            f"{', '.join(map(str, record.seeds)) or '-'}"))
    print(f"latentbrush demo: {len(files)} files in {out}/")
    for name, seconds, note in timings:
        print(f"  {name:9s} {seconds:6.2f} s  {note}")
    for path in files:
        if "previews" not in path.parts:
            print(f"  {path}")
    previews = [p for p in files if "previews" in p.parts]
    if previews:
        print(f"  {out / 'previews'}/ ({len(previews)} preview frames)")
    if not args.models:
        print("note: the built-in tiny model has random weights, so it paints noise, not pictures;\n"
              "      give the backend real models to get pictures: latentbrush demo --models DIR (see README)")
    return EXIT_OK
