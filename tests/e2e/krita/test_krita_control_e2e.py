"""Real Krita 5 (and, through krita6_driver, Krita 6): a control layer from the docker's list steers Generate.

Run: ``flock /tmp/lb-krita-e2e.lock .venv/bin/python -m pytest tests/e2e/krita/test_krita_control_e2e.py -q``.
The scenario runs in ``scripts/control_e2e.py`` inside Krita with the real backend on the tiny model and its
built-in tiny scribble ControlNet.
"""

from __future__ import annotations

import sys

import pytest
from krita_runner import backend_env, missing_tools, run_script
from test_krita_e2e import keep_screenshots

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_a_scribble_layer_steers_generate(krita_home, tmp_path):
    run = run_script(krita_home, "control_e2e", tmp_path, timeout_s=420, extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connect", {}).get("state") == "connected", (r.get("connect"), run.describe())
    assert r.get("ok"), (r, run.describe())
    assert ["tiny-scribble", "scribble", "tiny"] in r["connect"]["controls"]

    # the row: scribble first (it steers the tiny model), the document's layers, the painter's layer chosen
    row = r["row"]
    assert row["modes"][0] == "scribble" and row["source_is_layer"], row
    assert row["layers"][:2] == ["Current layer", "scribble"] and "Background" in row["layers"], row

    # Generate with the control: one result layer, one undo step, the layer's own pixels sent, the layer untouched
    on, off = r["on"], r["off"]
    assert on["state"] == "done" and on["op"] == "txt2img", on
    assert on["controls"] == [{"mode": "scribble", "preprocessor": "scribble", "weight": 1.0, "start": 0.0,
                               "end": 1.0, "blob": on["controls"][0]["blob"]}], on
    assert r["sketch_blob_is_the_layer"] and r["sketch_unchanged"]
    assert on["layers"] == ["Background", "scribble", on["layer_name"]] and r["undo_added"] == ["Add Layer"]
    # the control row is whole on screen under the Generate button (in Krita 5's 1600x1000 window the tab
    # does not even scroll; Krita 6's docker is shorter, its tab scrolls to the Settings below)
    assert not [n for n in r["layout"]["clipped"] if n.startswith("latentbrush_control")], r["layout"]

    # the same seed without the control paints something else
    assert off["state"] == "done" and off["controls"] == [], off
    assert r["differing_pixels"] > 0, r["result_digests"]
    assert r["hidden_read_is_the_layer"]

    # "make control image from canvas": white strokes on black in a new layer, one undo step, read as it is
    made = r["make_image"]
    assert made["state"] == "done" and made["op"] == "preprocess", made
    assert made["added"] == ["[Control] scribble"] and made["undo_added"] == ["Add Layer"], made
    assert made["row_reads_it"] and made["preprocessor_next"] == "" and made["sketch_unchanged"], made
    assert made["white"] > 500 and made["black"] > made["white"], made
    assert r["screenshot"]
    print(f"\ncontrol e2e (Krita {r['krita']}): with the control {on['seconds']:.1f} s, "
          f"without {off['seconds']:.1f} s, "
          f"{r['differing_pixels']} of {256 * 192} pixels differ; control image {made['white']} white px; "
          f"Generate tab scrolls: {r['layout']['scrolls']}; "
          f"run {run.seconds:.0f} s", file=sys.stderr)
    keep_screenshots(tmp_path, ("krita-controls.png",))
