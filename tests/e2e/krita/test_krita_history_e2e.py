"""Real Krita: the job history is saved in the .kra and survives save / close / reopen (scripts/history_e2e.py).

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita -k history``. Krita 6 runs the same test
through ``tests/e2e/newer_hosts/krita6_driver.py``.
"""

from __future__ import annotations

import sys
import zipfile

import pytest
from krita_runner import backend_env, missing_tools, run_script
from test_krita_e2e import keep_screenshots

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]



def test_history_survives_save_close_and_reopen(krita_home, tmp_path):
    run = run_script(krita_home, "history_e2e", tmp_path, timeout_s=420,
                     extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connect", {}).get("state") == "connected", (r.get("connect"), run.describe())
    assert r.get("ok"), (r, run.describe())
    jobs = r["jobs"]
    ids = [j["job_id"] for j in jobs]
    assert [j["state"] for j in jobs] == ["done"] * 3, jobs

    # after each job the document carries the history; the .kra holds it as an annotation
    assert r["before_save"]["saved_jobs"] == ids and "latentbrush-history" in r["before_save"]["annotations"]
    assert r["saved"]
    with zipfile.ZipFile(r["kra"]) as z:
        assert any(name.endswith("/annotations/latentbrush-history") for name in z.namelist())

    # reopened: the rows (newest on top) with thumbnails and every parameter; opening did not modify it
    restored = r["restored"]
    assert restored["rows"] == ids[::-1] and all(restored["icons"])
    assert restored["modified"] is False
    for saved, job in zip(restored["parameters"], jobs, strict=True):
        for key in ("prompt", "negative_prompt", "model", "sampler", "steps", "cfg", "seeds", "strength", "region"):
            assert saved[key] == job["provenance"][key], (key, saved, job["provenance"])
    assert [p["prompt"] for p in restored["parameters"]] == ["a wooden boat", "a red kite in the sky", "a stone tower"]
    assert [p["seeds"] for p in restored["parameters"]] == [[100], [101], [102]]
    assert all(t[0] == "png" and max(t[1], t[2]) <= 128 for t in restored["thumbnails"])
    assert restored["complete"] == [True, True, True]

    # Apply after reopening re-creates the layer, bit for bit, under the same name, in one undo step
    apply = r["apply"]
    assert apply["layer_name"] == apply["expected_name"] and apply["bounds"] == apply["expected_bounds"]
    assert apply["identical"] and apply["identical_to_saved_layer"]
    assert apply["undo_added"] == ["Add Layer"]

    # search by prompt, words in any case
    assert r["search"] == {"kite": [ids[1]], "tower boat": [], "cleared": ids[::-1]}

    # delete one record: gone from the list and the document, no layer touched
    assert r["delete"] == {"rows": ids[1::-1], "saved_jobs": ids[:2], "layers_unchanged": True}

    # the budget keeps the newest full result, drops the oldest one, says so; thumbnails and parameters stay
    budget = r["budget"]
    assert budget["saved_jobs"] == ids[:2] and budget["complete"] == [False, True], budget
    assert budget["annotation_bytes"] <= budget["budget_bytes"]
    assert "dropped the full results of the 1 oldest job(s)" in budget["note"], budget
    assert budget["texts"][-1].endswith("thumbnail only") and not budget["texts"][0].endswith("thumbnail only")
    assert "Cannot apply" in budget["apply_dropped_status"] and budget["apply_dropped_layers_unchanged"]
    assert float(budget["setting"]) == pytest.approx(r["budget_sizes"]["budget_mb"])
    assert r["screenshot"]
    print(f"\nKrita {r['krita']}: history sizes {r['budget_sizes']}; run {run.seconds:.0f} s", file=sys.stderr)
    keep_screenshots(tmp_path, ("krita-history.png",))
