"""Real Krita 5: two region rows (a layer's opacity and a prompt each) steer Generate (issue 15, regions).

Run: ``flock /tmp/lb-krita.lock .venv/bin/python -m pytest tests/e2e/krita/test_krita_regions_e2e.py -q``.
The scenario runs in ``scripts/regions_e2e.py`` inside Krita with the real backend on the tiny model.
"""

from __future__ import annotations

import sys

import pytest
from krita_runner import backend_env, missing_tools, run_script
from test_krita_e2e import keep_screenshots

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_two_regions_steer_generate(krita_home, tmp_path):
    run = run_script(krita_home, "regions_e2e", tmp_path, timeout_s=420, extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connect", {}).get("state") == "connected", (r.get("connect"), run.describe())
    assert r.get("ok"), (r, run.describe())
    assert all(row["source"] and row["layers"][0] == "Current layer" for row in r["rows"]), r["rows"]

    # Generate with the rows: both regions sent with their prompts, each mask is its layer's opacity
    on, off = r["on"], r["off"]
    assert on["state"] == "done" and on["op"] == "txt2img", on
    assert [(x["prompt"], x["weight"]) for x in on["regions"]] == [("a stormy sky", 1.0), ("a calm green sea", 0.8)]
    assert r["masks_are_the_layers_opacity"] == [True, True], (r["masks_are_the_layers_opacity"], on["context"])
    assert [x["prompt"] for x in on["info_regions"]] == ["a stormy sky", "a calm green sea"], on
    assert r["undo_added"] == ["Add Layer"] and r["regions_unchanged"]

    # rows off: no regions, and the same seed paints something else
    assert off["state"] == "done" and off["regions"] == [], off
    assert r["differing_pixels"] > 0
    assert r["screenshot"]
    print(f"\nregions e2e (Krita {r['krita']}): with regions {on['seconds']:.1f} s, without {off['seconds']:.1f} s, "
          f"{r['differing_pixels']} of {256 * 192} pixels differ; run {run.seconds:.0f} s", file=sys.stderr)
    keep_screenshots(tmp_path, ("krita-regions.png",))
