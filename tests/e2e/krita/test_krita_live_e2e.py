"""Real Krita 5 (and, through krita6_driver, Krita 6): live mode (issue 13, items 1 and 6).

Run: ``flock /tmp/lb-krita-e2e.lock .venv/bin/python -m pytest tests/e2e/krita/test_krita_live_e2e.py -q``.
The scenario runs in ``scripts/live_e2e.py`` inside Krita with the real backend on the tiny model. Latencies and
check costs are printed here and tabled by ``bench/bench_live.py``; they are measured, not asserted.
"""

from __future__ import annotations

import sys

import pytest
from krita_runner import backend_env, missing_tools, run_script

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

LIVE = "[Live]"


def test_live_mode_follows_strokes(krita_home, tmp_path):
    run = run_script(krita_home, "live_e2e", tmp_path, timeout_s=600, extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connected"), (r.get("server_output"), run.describe())
    assert r.get("ok"), (r, run.describe())
    assert r["active_is_strokes"]

    # live on: one job on the canvas as it is, into one live layer; one undo step for that layer; then quiet
    first = r["first"]
    assert first["state"] == "done" and first["layers"] == ["Background", "Strokes", LIVE], first
    assert first["undo_added"] == ["Add Layer"], first
    assert r["quiet_jobs"] == 0

    # every stroke: a job whose steps streamed into the live layer and whose result changed it
    for stroke in r["strokes"]:
        assert stroke["state"] == "done" and stroke["jobs"] >= 1, stroke
        assert stroke["frames"] >= 2 and stroke["layer_changed"], stroke
        assert stroke["seed"] == 1, stroke  # the fixed live seed: strokes, not noise, change the picture

    # a stroke during a streaming job: that job was cancelled before its last step, the newest one finished
    stale = r["supersede"]
    assert stale["stale_state"] == "cancelled" and stale["stale_error"] is None, stale
    assert stale["stale_step"] < stale["stale_total"] and stale["newest_state"] == "done", stale

    # Apply: a normal layer under the live layer with its pixels, one undo step, no job of its own
    applied = r["apply"]
    name = "[Generated] a harbour at dusk (1)"
    assert applied["layers"] == ["Background", "Strokes", name, LIVE], applied
    assert applied["undo_added"] == ["Add Layer"] and applied["jobs"] == 0, applied
    assert applied["same_pixels"] and not applied["locked"], applied
    assert applied["active"] == "Strokes", applied  # neither the live layer nor the copy took the brush

    # off: the live layer is gone, nothing runs; the painter's layers were only ever read
    assert r["off"]["layers"] == ["Background", "Strokes", name] and not r["off"]["active"], r["off"]
    assert r["off"]["running"] == 0 and r["painter_layer_unchanged"]
    for key in ("check_live_ms", "check_context_ms", "check_canvas_512_ms", "check_canvas_2048_ms"):
        assert r[key]["n"] > 0, (key, r[key])

    strokes = r["strokes"]
    print(f"\nlive e2e (Krita {r['krita']}): {len(strokes)} strokes, "
          f"stroke->first preview {[s['first_preview_s'] for s in strokes]} s, "
          f"stroke->result {[s['result_s'] for s in strokes]} s; check ms live {r['check_live_ms']}, "
          f"2048 canvas {r['check_canvas_2048_ms']} (full read {r['full_read_2048_ms']}); "
          f"loop gaps {r['loop_gaps_ms']}; run {run.seconds:.0f} s", file=sys.stderr)
