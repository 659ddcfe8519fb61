"""Real Krita 5 (and, through krita6_driver, Krita 6): the selection is the contract (issue 11, items 1 and 3).

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita -k selection``. The scenario runs in
``scripts/selection_e2e.py`` inside Krita with the real backend on the tiny model.
"""

from __future__ import annotations

import sys

import pytest
from krita_runner import backend_env, missing_tools, run_script

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]



def test_selection_is_the_contract(krita_home, tmp_path):
    run = run_script(krita_home, "selection_e2e", tmp_path, timeout_s=600,
                     extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connected"), (r.get("server_output"), run.describe())
    assert r.get("ok"), run.describe()
    assert r["blend_outward_default"] == 0  # the selection is the limit unless the painter says otherwise

    for name in ("feathered_ellipse", "off_canvas_rect", "blend_outward_12", "select_all_inpaint"):
        s = r[name]
        assert s["state"] == "done" and s["op"] == "inpaint", (name, s)
        assert s["changed"] > 0 and s["restored_after_undo"], (name, s)

    ellipse = r["feathered_ellipse"]
    assert ellipse["selection_partial_pixels"] > 10000  # Krita's Feather 20 made a soft edge...
    assert ellipse["edges"][2] == 0 and ellipse["edges"][3] == 0  # ...which is the blend, as painted
    assert ellipse["changed_where_unselected"] == 0 and ellipse["alpha_over_coverage"] == 0, ellipse

    rect = r["off_canvas_rect"]
    assert rect["region"] == [0, 300, 140, 120]
    lx, ly, lw, lh = rect["layer_bounds"]
    assert lx >= 0 and ly >= 300 and lx + lw <= 140 and ly + lh <= 420, rect
    assert rect["changed_where_unselected"] == 0 and rect["alpha_over_coverage"] == 0, rect
    assert rect["reach_past_rect_px"] == 0

    outward = r["blend_outward_12"]
    assert outward["edges"][3] == 12 and outward["region"] == [0, 288, 152, 144]
    assert 0 < outward["reach_past_rect_px"] <= 12, outward  # past the selection, as asked, no further

    whole = r["select_all_inpaint"]
    assert whole["layer_bounds"] == [0, 0, 1024, 768] and whole["region"] == [0, 0, 1024, 768]
    print(f"\nselection e2e: ellipse {ellipse['changed']} px changed ({ellipse['seconds']} s), "
          f"rect {rect['changed']}, outward reach {outward['reach_past_rect_px']} px; run {run.seconds:.0f} s",
          file=sys.stderr)
