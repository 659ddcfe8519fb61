"""The CLI's runner: real subprocess steps, the log, progress callbacks, failures and in-process steps."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from latentbrush.plugin.core.install.errors import InstallFailed
from latentbrush.plugin.core.install.layout import layout_at
from latentbrush.plugin.core.install.machine import Machine
from latentbrush.plugin.core.install.plan import InstallPlan, Step, Tools, make_plan, run_internal
from latentbrush.plugin.core.install.runner import redact, run_plan
from latentbrush.plugin.core.install.state import BUILD_FILE, InstallState, read_state


def py(code: str, title: str = "a step", weight: float = 1.0, env: tuple[tuple[str, str], ...] = ()) -> Step:
    return Step(title, (sys.executable, "-c", code), env, weight)


def run(plan: InstallPlan) -> tuple[str, list[tuple[int, str]], list[str]]:
    log = io.StringIO()
    steps: list[tuple[int, str]] = []
    lines: list[str] = []
    try:
        run_plan(plan, log, lambda i, s: steps.append((i, s.title)), lines.append)
    finally:
        text = log.getvalue()
    return text, steps, lines


def test_output_streams_and_is_logged_with_timestamps_and_argv(tmp_path: Path) -> None:
    layout = layout_at(tmp_path)
    plan = InstallPlan("install", (py("print('one'); print('two')", "first"),
                                   py("import os; print(os.environ['LB_PROBE'])", "second",
                                      env=(("LB_PROBE", "from-the-step"),))), None, layout)
    log, steps, lines = run(plan)
    assert steps == [(0, "first"), (1, "second")]
    assert lines == ["one", "two", "from-the-step"]
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d == first$", log, re.MULTILINE)
    assert f"$ {sys.executable} -c " in log and "  two\n" in log and log.rstrip().endswith("done")


def test_a_failing_step_stops_the_plan_with_the_cause(tmp_path: Path) -> None:
    layout = layout_at(tmp_path)
    fail = py("import sys; print('ERROR: Could not install packages due to an OSError: [Errno 28] No space left "
              "on device'); sys.exit(1)", "Installing PyTorch")
    plan = InstallPlan("install", (fail, py("print('never')")), None, layout)
    with pytest.raises(InstallFailed, match="Installing PyTorch failed: the disk is full") as caught:
        run(plan)
    assert str(layout.log_file) in str(caught.value)


def test_a_missing_program_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    plan = InstallPlan("install", (Step("Creating the Python environment", (str(tmp_path / "no-such-uv"), "venv")),),
                       None, layout_at(tmp_path))
    with pytest.raises(InstallFailed, match="could not be started"):
        run(plan)


def test_credentials_in_urls_never_reach_the_log(tmp_path: Path) -> None:
    url = "https://ann:s3cret@pypi.example.org/simple"
    plan = InstallPlan("install", (py(f"print('using {url}')"),), None, layout_at(tmp_path))
    log, _, _ = run(plan)
    assert "s3cret" not in log and "https://***@pypi.example.org/simple" in log
    assert redact("file:///opt/pypi/simple") == "file:///opt/pypi/simple"


def test_the_check_build_is_folded_into_the_state_and_models_made(tmp_path: Path) -> None:
    layout = layout_at(tmp_path)
    plan = make_plan("install", layout, Machine("linux", "x86_64", "nvidia"), Tools(None, ("python3",), "3.11"),
                     env={}, version="0.1.0")
    write_state = plan.steps[-1]
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / BUILD_FILE).write_text(json.dumps({"torch_build": "2.14.1+cu130 (CUDA 13.0, GPU found)"}))
    run_internal(write_state, layout)
    state = read_state(layout.state_file)
    assert isinstance(state, InstallState)
    assert state.torch_build == "2.14.1+cu130 (CUDA 13.0, GPU found)" and state.installed_at
    assert state.torch_requirements == ("torch==2.14.1", "torchvision==0.29.1") and state.tool == "pip"
    assert layout.models_dir.is_dir() and not (tmp_path / BUILD_FILE).exists()


def test_uninstall_removes_the_venv_and_state_and_keeps_models(tmp_path: Path) -> None:
    layout = layout_at(tmp_path / "server")
    (layout.venv / "bin").mkdir(parents=True)
    layout.python.write_text("")
    (layout.venv / "lib" / "site.py").parent.mkdir()
    (layout.venv / "lib" / "site.py").write_text("")
    layout.state_file.write_text("{}")
    (layout.models_dir / "checkpoints").mkdir(parents=True)
    (layout.models_dir / "checkpoints" / "mine.safetensors").write_bytes(b"weights")
    machine, tools = Machine("linux", "x86_64", "none"), Tools(None, None)
    run(make_plan("uninstall", layout, machine, tools, env={}))
    assert not layout.venv.exists() and not layout.state_file.exists()
    assert (layout.models_dir / "checkpoints" / "mine.safetensors").read_bytes() == b"weights"
    run(make_plan("uninstall", layout, machine, tools, env={}, remove_models=True))
    assert not layout.models_dir.exists()


def test_in_process_removal_stays_inside_the_root(tmp_path: Path) -> None:
    layout = layout_at(tmp_path / "server")
    outside = tmp_path / "precious"
    outside.mkdir()
    for argv in (("latentbrush:remove-tree", str(outside)), ("latentbrush:remove-tree", str(layout.root / ".." /
                                                                                           "precious"))):
        with pytest.raises(InstallFailed, match="outside"):
            run_internal(Step("Removing", argv), layout)
    assert outside.is_dir()
    with pytest.raises(InstallFailed, match="unknown in-process step"):
        run_internal(Step("?", ("latentbrush:format-disk",)), layout)
