"""Real Krita 5 under Xvfb: the installed plugin, its document adapter, and full jobs on the tiny model.

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita`` (needs apt packages krita, python3-pyqt5,
xvfb, xauth). The scripts in ``scripts/`` run inside Krita and write JSON; the asserts are here.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from krita_runner import backend_env, missing_tools, run_script

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

ROOT = Path(__file__).resolve().parents[3]
DOCS_IMAGES = ROOT / "docs" / "images"



def kra_layer_names(path: str) -> list[str]:
    with zipfile.ZipFile(path) as z:
        assert z.read("mimetype") == b"application/x-krita"
        xml = z.read("maindoc.xml").decode()
    return [part.split('"', 1)[0] for part in xml.split(' name="')[1:]]


def test_document_adapter_in_real_krita(krita_home, tmp_path):
    run = run_script(krita_home, "adapter_e2e", tmp_path, timeout_s=150)
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0" and r.get("ok"), run.describe()

    # the plugin is registered: extension, docker, actions with their default shortcuts
    assert "LatentbrushExtension" in r["extensions"]
    assert r["docker_found"], r
    assert {"latentbrush_prompt", "latentbrush_inpaint", "latentbrush_cancel", "latentbrush_history"} <= set(
        r["docker_widgets"])
    assert r["actions"]["latentbrush_inpaint"] == "Ctrl+Shift+Return"
    assert r["actions"]["latentbrush_refine"] == "Ctrl+Alt+Shift+R"
    assert r["actions"]["latentbrush_cancel"] == "Ctrl+Alt+Shift+X"

    # selections: feathered (partial coverage), clipped at the edge, none
    feathered = r["feathered_selection"]
    assert feathered["bounds"] == [192, 142, 116, 96] and feathered["max"] == 255 and feathered["partial_values"] > 5
    assert r["edge_selection_bounds"] == [0, 300, 70, 84]
    assert r["outside_selection"] and r["no_selection"]

    # reads: transparent past the canvas, BGRA inside
    assert r["read_past_edge"]["corner"] == [0, 0, 0, 0] and r["read_past_edge"]["format"] == "bgra8"
    assert r["read_past_edge"]["inside"][3] == 255
    assert r["read_red_block"] == [30, 30, 220, 255]

    # preview: one locked layer on top, inside the region, its frame's alpha kept (soft edge), every frame
    frames = r["preview_frames"]
    assert [f["count"] for f in frames] == [1] * 5 and all(f["locked"] for f in frames)
    rx, ry, rw, rh = 180, 130, 140, 120
    for f in frames:
        x, y, w, h = f["bounds"]
        assert rx < x and ry < y and x + w < rx + rw and y + h < ry + rh and f["center_matches"], frames
    assert r["preview_alpha"]["corner"] == 0 and r["preview_alpha"]["center"] == 255, r["preview_alpha"]
    assert r["preview_alpha"]["partial"] > 100, r["preview_alpha"]

    # result: a layer at the region, one undo step, nothing else changed, undo restores the image
    res = r["result"]
    assert res["layers"][-1][0] == "[Generated] a test (1234)" and res["bounds"] == [190, 140, 120, 100]
    assert res["undo_added"] == ["Add Layer"]
    assert res["changed_outside_opaque_box"] == 0 and res["changed_inside_opaque_box"] > 0
    assert r["after_undo"] == {"layers": ["Background"], "image_restored": True}

    # cancel: the preview goes away and the image is as before
    cancel = r["cancel"]
    assert cancel["during"] == ["Background", "[Preview]"] and cancel["after"] == ["Background"]
    assert cancel["image_restored"] and cancel["undo_added"] == []  # the preview's "Add Layer" was taken back

    # batch: one group, one undo step for it
    batch = r["batch"]
    assert batch["layers"][-1][0] == "[Generated] batch test" and len(batch["layers"][-1][5]) == 3
    assert batch["undo_added"] == ["Add Layer"] and batch["after_undo"] == ["Background"]

    # upscale: the document doubles, the result covers it
    assert r["upscale"]["size"] == [1024, 768] and r["upscale"]["bounds"] == [0, 0, 1024, 768]
    assert r["upscale"]["undo_added"][-2:] == ["Scale Image", "Add Layer"]

    # 16-bit documents, unsupported colour models
    assert r["u16"]["read"] == [0x12, 0x56, 0x9A, 0xFF]
    assert r["u16"]["written"] == [1, 1, 2, 2, 3, 3, 255, 255]
    assert "CMYKA/U8" in r["cmyk_message"] and "Convert Image Color Space" in r["cmyk_message"]

    assert r["saved"] and "[Preview]" not in kra_layer_names(r["kra"])
    print(f"\nKrita {r['krita']} ({r['qt_api']}, Python {r['python']}): preview update "
          f"{', '.join(f'{ms:.1f}' for ms in r['preview_update_ms'])} ms; run {run.seconds:.0f} s", file=sys.stderr)


def test_plugin_jobs_with_the_real_backend(krita_home, tmp_path):
    run = run_script(krita_home, "plugin_e2e", tmp_path, timeout_s=420,
                     extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connect", {}).get("state") == "connected", (r.get("connect"), run.describe())
    assert r.get("ok"), run.describe()
    assert r["connect"]["models"], r["connect"]

    inpaint = r["inpaint"]
    assert inpaint["state"] == "done" and inpaint["op"] == "inpaint", inpaint
    assert inpaint["frames"] >= 1 and inpaint["preview_samples"] > 0 and inpaint["preview_always_one_locked"]
    assert inpaint["layer_name"].startswith("[Generated] a wooden boat") and "(1234)" in inpaint["layer_name"]
    region = inpaint["region"]
    assert inpaint["result_bounds"] == region
    lx, ly, lw, lh = inpaint["layer_bounds"]
    assert region[0] <= lx and region[1] <= ly and lx + lw <= region[0] + region[2] and ly + lh <= region[1] + region[3]
    assert inpaint["layers"] == ["Background", inpaint["layer_name"]] and inpaint["undo_added"] == ["Add Layer"]
    assert inpaint["changed_outside_region"] == 0 and inpaint["changed_inside_region"] > 0
    assert inpaint["after_undo"] == {"layers": ["Background"], "restored": True}
    assert inpaint["progress_format"] == "done" and inpaint["history_rows"] >= 1 and inpaint["history_icon"]
    # the preview looks like the result: only in the region, transparent where nothing is selected, soft along
    # the feathered selection's edge, opaque inside it
    alpha = inpaint["preview_alpha"]
    assert alpha is not None, "no preview frame was captured mid-job"
    assert alpha["outside_region"] == 0 and alpha["outside_selection"] == 0, alpha
    assert alpha["opaque"] > 0 and alpha["partial_on_soft_edge"] > alpha["soft_edge_pixels"] // 4, alpha
    assert all(region[0] <= b[0] and region[1] <= b[1] and b[0] + b[2] <= region[0] + region[2]
               and b[1] + b[3] <= region[1] + region[3] for b in inpaint["preview_bounds_seen"]), inpaint

    # the docker in a 1600x1000 window: every tab whole without scrolling, a big primary action, 6+ history rows
    layout = r["layout"]
    assert layout["window"][0] <= 1600 and layout["window"][1] <= 1000, layout
    for title in ("Generate", "Live", "Upscale", "History", "Connection"):
        tab = layout["tabs"][title]
        assert not tab["scrolls"] and tab["clipped"] == [], (title, layout)
    primary = layout["primary"]
    assert primary["visible"] and not primary["clipped"], layout
    assert primary["rect"][3] >= 1.8 * layout["normal_button_height"], layout
    assert layout["history"]["rows_shown"] >= 6 and layout["cancel_visible"], layout

    cancel = r["cancel"]
    assert cancel["state"] == "cancelled" and cancel["frames_at_cancel"] >= 2 and cancel["step"] < cancel["total"]
    assert cancel["layers"] == ["Background"] and cancel["restored"] and cancel["undo_added"] == []

    refine = r["refine"]
    assert refine["state"] == "done" and refine["op"] == "img2img" and refine["strength"] == 0.5
    assert refine["changed_outside_region"] == 0 and refine["frames"] >= 1
    assert refine["layers"][-1] == refine["layer_name"] and refine["undo_added"] == ["Add Layer"]

    upscale = r["upscale"]
    assert upscale["state"] == "done", upscale
    assert upscale["size"] == [1024, 768] and upscale["layer_bounds"] == [0, 0, 1024, 768]
    assert upscale["undo_added"][-2:] == ["Scale Image", "Add Layer"]

    assert r["saved"]
    names = kra_layer_names(r["kra"])
    assert refine["layer_name"] in names and "[Preview]" not in names
    assert r["server_stopped"]
    lat = r["preview_latency_ms"]
    print(f"\npreview frame -> layer updated: {lat['frames']} frames, median {lat['median']:.2f} ms, "
          f"p95 {lat['p95']:.2f} ms, max {lat['max']:.2f} ms (+ up to {lat['pump_busy_interval_ms']} ms pump tick); "
          f"connect {r['connect']['seconds']:.1f} s, inpaint {inpaint['seconds']:.1f} s; run {run.seconds:.0f} s; "
          f"docker {layout['docker']}, tabs need {[t['content_min_height'] for t in layout['tabs'].values()]} px, "
          f"history shows {layout['history']['rows_shown']} rows",
          file=sys.stderr)
    keep_screenshots(tmp_path, ("krita-docker.png", "krita-inpaint-preview.png"))


def keep_screenshots(folder: Path, names: tuple[str, ...]) -> None:
    """With LATENTBRUSH_UPDATE_SCREENSHOTS=1, copy the screenshots ``names`` into docs/images/."""
    import os
    import shutil

    if os.environ.get("LATENTBRUSH_UPDATE_SCREENSHOTS") != "1":
        return
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (folder / name).is_file():
            shutil.copy2(folder / name, DOCS_IMAGES / name)
