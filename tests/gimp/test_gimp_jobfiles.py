"""The files that carry Cancel between GIMP plug-in processes (plugin/hosts/gimp/jobfiles.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from latentbrush.plugin.hosts.gimp.jobfiles import JobFiles, RunningJob


def test_cancel_reaches_the_running_job(tmp_path):
    runner = JobFiles(tmp_path / "jobs", image_id=3)
    canceller = JobFiles(tmp_path / "jobs", image_id=3)  # another process, same image
    assert not canceller.request_cancel()  # nothing running yet
    runner.start(RunningJob("job-1", os.getpid(), 0, "inpaint"))
    assert canceller.running() == RunningJob("job-1", os.getpid(), 0, "inpaint")
    assert not runner.cancel_requested()
    assert canceller.request_cancel()
    assert runner.cancel_requested()
    runner.finish()
    assert canceller.running() is None and not runner.cancel_requested()


def test_images_do_not_share_cancel_requests(tmp_path):
    first, second = JobFiles(tmp_path, 1), JobFiles(tmp_path, 2)
    first.start(RunningJob("job-a", os.getpid()))
    second.start(RunningJob("job-b", os.getpid()))
    assert first.request_cancel()
    assert first.cancel_requested() and not second.cancel_requested()


def test_a_stale_cancel_request_does_not_cancel_the_next_job(tmp_path):
    files = JobFiles(tmp_path, 7)
    files.start(RunningJob("job-old", os.getpid()))
    files.request_cancel()
    files.start(RunningJob("job-new", os.getpid()))  # e.g. the old process was killed before finish()
    assert not files.cancel_requested()


def test_a_dead_process_is_not_running(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    files = JobFiles(tmp_path, 1)
    files.start(RunningJob("job-x", dead_pid))
    assert files.running() is None
    assert not files.request_cancel()


def test_preview_count_updates_and_garbage_is_ignored(tmp_path):
    files = JobFiles(tmp_path, 1)
    files.start(RunningJob("job-1", os.getpid()))
    files.update(RunningJob("job-1", os.getpid(), previews=5))
    assert files.running().previews == 5
    (tmp_path / "running-1.json").write_text("{not json", encoding="utf-8")
    assert files.running() is None
