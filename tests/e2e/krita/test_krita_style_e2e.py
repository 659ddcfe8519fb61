"""Real Krita 5: the docker's Style row picks a style and the job carries it (issue 15 item 3).

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita -k style``. The scenario runs in
``scripts/style_e2e.py`` inside Krita with the real backend on the tiny model.
"""

from __future__ import annotations

import pytest
from krita_runner import backend_env, missing_tools, run_script

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]


def test_a_style_chosen_in_the_docker_shapes_the_job(krita_home, tmp_path):
    run = run_script(krita_home, "style_e2e", tmp_path, timeout_s=420, extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connected"), (r.get("server_output"), run.describe())
    assert r.get("ok"), run.describe()

    # the built-ins that ship with the plugin, then the painter's file from the config folder under HOME
    assert r["user_dir"].startswith(str(krita_home)) and r["user_dir"].endswith("latentbrush/styles")
    assert r["combo"][0] == "Default" and "Ink sketch" in r["combo"] and r["combo"][-1] == "E2E harbour (yours)"
    assert r["initial_style"] == "Default"
    generate_tab = r["layout"]["tabs"]["Generate"]
    assert not generate_tab["scrolls"] and generate_tab["clipped"] == [], r["layout"]

    # the built-in "Ink sketch": its template around the prompt, its negative before the painter's, its steps
    assert r["ink_widgets"] == {"steps": 24, "cfg": 7.5, "sampler": "Euler a", "live_steps": 6}, r["ink_widgets"]
    ink = r["ink"]
    assert ink["state"] == "done", ink
    assert ink["prompt"].startswith("ink sketch of a lighthouse, black ink on white paper"), ink
    assert ink["negative"].startswith("color, colorful") and ink["negative"].endswith(", people"), ink
    assert (ink["steps"], ink["cfg"], ink["sampler"], ink["total"]) == (24, 7.5, "Euler a", 24), ink
    assert r["remembered"] == "Ink sketch"

    # the painter's own style
    mine = r["mine"]
    assert mine["state"] == "done", mine
    assert (mine["prompt"], mine["negative"]) == ("foggy harbour, a lighthouse, muted colors", "sunny, people")
    assert (mine["steps"], mine["cfg"], mine["sampler"]) == (5, 4.5, "Euler"), mine
    assert r["mine_live"]["steps"] == 3 and r["mine_live"]["cfg"] == 2.0, r["mine_live"]
    assert r["mine_live"]["prompt"] == "foggy harbour, a lighthouse, muted colors"
    assert r["remembered_after"] == "E2E harbour"
