"""Check, from outside the chroot, what an e2e run inside it wrote: its report and images.

usage: check_outputs.py gimp|krita6 OUT_DIR      exit 0 when everything is there and consistent
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from PIL import Image

GIMP_STEPS = ("inpaint", "cancel", "img2img", "history", "upscale", "server_loss", "read_control", "control",
              "control_generate", "control_inpaint")
GIMP_CANVAS = (256, 192)
# GIMP's own criticals about images and layers are failures (GIMP 3.0.4 logged
# "gimp_image_set_selected_layers: assertion 'GIMP_IS_LAYER (iter->data)' failed" on an undo after a
# job, and sometimes crashed). Gdk's and the device manager's complaints about Xvfb's fake input
# devices are the test display's, not ours.
GIMP_CRITICAL = re.compile(r"Gimp-Core-CRITICAL|gimp_image_\w+: assertion|GIMP_IS_(LAYER|ITEM|DRAWABLE)")


def fail(message: str) -> int:
    print(f"check_outputs: {message}", file=sys.stderr)
    return 1


def check_gimp(out: Path) -> int:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    missing = [s for s in GIMP_STEPS if s not in report.get("steps", {})]
    if missing:
        return fail(f"report.json lacks steps {missing}")
    for step in ("inpaint", "img2img", "upscale", "control_generate", "control_inpaint"):
        if report["steps"][step].get("previews", 0) < 1:
            return fail(f"{step}: no preview frames reached the preview layer")
    with Image.open(out / "result.png") as image:
        if image.size != GIMP_CANVAS:
            return fail(f"result.png is {image.size}, expected {GIMP_CANVAS}")
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        if colours is not None and len(colours) < 16:
            return fail("result.png is nearly flat: the layers were not composited")
    shot = out / "screenshot.png"
    if shot.exists():
        with Image.open(shot) as image:
            extrema = image.convert("L").getextrema()
            if extrema[0] == extrema[1]:
                return fail("screenshot.png is a flat image (nothing was drawn on the screen)")
    lost = report["steps"]["server_loss"]
    if not lost.get("ended_after_kill_s", 99) < 10 or "Errno" in lost.get("message", "Errno"):
        return fail(f"server_loss: the job did not end in plain words within 10 s: {lost}")
    control = report["steps"]["control"]
    if control.get("pixels_differing_from_plain", 0) < 1 or control.get("strength_0_equals_plain") is not True:
        return fail(f"control: the scribble layer did not steer Generate (or strength 0 did not switch it off): "
                    f"{control}")
    if not all(report["steps"]["read_control"].get("errors", {}).values()):
        return fail(f"read_control: a missing layer did not fail plainly: {report['steps']['read_control']}")
    log = out / "gimp.log"
    criticals = [line for line in log.read_text("utf-8", "replace").splitlines() if GIMP_CRITICAL.search(line)]
    if criticals:
        return fail(f"GIMP logged {len(criticals)} critical(s) about images/layers, first: {criticals[0][:300]}")
    print(f"check_outputs: {out}: report and images OK ({', '.join(report['steps'])}), no GIMP criticals")
    return 0


def check_krita6(out: Path) -> int:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    if not report.get("passed"):
        return fail(f"Krita 6 report says not passed: {report}")
    print(f"check_outputs: {out}: Krita 6 report OK")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("gimp", "krita6"):
        return fail(__doc__ or "usage")
    out = Path(argv[2])
    try:
        return check_gimp(out) if argv[1] == "gimp" else check_krita6(out)
    except (OSError, ValueError, KeyError) as exc:
        return fail(f"{out}: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
