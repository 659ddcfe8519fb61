"""Real Krita: a cancelled job leaves no undo entry; a SIGKILLed local server ends the job at once; Restart works.

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita -k server_loss`` (scripts/server_loss_e2e.py).
Krita 6 runs the same test through ``tests/e2e/newer_hosts/krita6_driver.py`` (its local server is the
``attach_backend.py`` forwarder, so killing it drops the connection like a dead server).
"""

from __future__ import annotations

import sys

import pytest
from krita_runner import backend_env, missing_tools, run_script

pytestmark = [pytest.mark.krita, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

END_LIMIT_S = 10  # a job whose server died ends within this (issue 11)
INTERNAL_WORDS = ("Errno", "NotConnected", "txt2img", "img2img", "too_large", "job.")



def test_killed_local_server_ends_the_job_and_restart_runs_the_next(krita_home, tmp_path):
    run = run_script(krita_home, "server_loss_e2e", tmp_path, timeout_s=420,
                     extra_env=backend_env())
    r = run.results
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()
    assert r.get("connect", {}).get("state") == "connected", (r.get("connect"), run.describe())
    assert r.get("ok"), (r, run.describe())

    cancel = r["cancel"]
    assert cancel["state"] == "cancelled" and cancel["layers"] == ["Background"]
    assert cancel["undo_added"] == []  # the preview's add and remove left nothing in the undo history

    killed = r["killed"]
    assert killed["during"]["state"] == "started" and PREVIEW_LAYER in killed["during"]["layers"]
    assert killed["seconds_to_end"] < END_LIMIT_S, killed
    assert killed["state"] == "error" and killed["error_code"] == "server_stopped", killed
    assert killed["layers"] == ["Background"] and killed["running_jobs"] == 0 and killed["undo_added"] == []
    assert killed["connection"] == "failed" and killed["button"] == "Restart" and killed["inpaint_enabled"]
    assert "Restart" in killed["error"] and "Restart" in killed["status"], killed
    assert "local server" in killed["connection_text"] and killed["connection_tooltip"], killed
    for text in (killed["error"], killed["status"], killed["connection_text"]):
        assert not any(word in text for word in INTERNAL_WORDS), text
    assert killed["bar_value"] == 0 and killed["bar_format"] == "error"  # no stale step count

    assert r["restart"] == {"state": "connected", "button": "Disconnect"}
    after = r["after_restart"]
    assert after["state"] == "done" and after["layers"][-1].startswith("[Generated] a lighthouse"), after
    print(f"\nKrita: SIGKILLed server -> job ended in {killed['seconds_to_end']:.2f} s; run {run.seconds:.0f} s",
          file=sys.stderr)


PREVIEW_LAYER = "[Preview]"
