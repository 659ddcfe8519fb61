"""The Connection tab's "Install local server": InstallRunner runs real processes, InstallPanel shows them.

The plans are small but real: their Steps run ``sys.executable -c ...`` and the core's in-process steps
(``latentbrush:write-state``) against a layout in a temporary folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from latentbrush.plugin.core.install.errors import InstallError
from latentbrush.plugin.core.install.layout import is_installed, layout_at
from latentbrush.plugin.core.install.plan import InstallPlan, Step
from latentbrush.plugin.core.install.state import InstallState
from latentbrush.plugin.hosts.krita.install_panel import InstallPanel, confirm_text, managed_command
from latentbrush.plugin.hosts.krita.install_runner import CANCELLED, InstallRunner
from latentbrush.plugin.hosts.krita.server_process import join_command, split_command
from qt_wait import spin_until

PY = sys.executable


def py(title: str, code: str, weight: float = 1.0, env: tuple[tuple[str, str], ...] = ()) -> Step:
    return Step(title, (PY, "-c", code), env, weight)


def make_venv_python(layout) -> Step:
    """Stands in for "create the venv": puts a python where the layout expects one."""
    code = f"import pathlib, shutil, sys; p = pathlib.Path({str(layout.python)!r}); p.parent.mkdir(parents=True, " \
           "exist_ok=True); shutil.copy(sys.executable, p); print('created', p)"
    return py("Creating the Python environment", code)


def write_state() -> Step:
    state = InstallState(version="0.1.0", torch_label="CPU only", torch_requirements=("torch==2.14.1",),
                         torch_index_url=None, source="", tool="pip")
    return Step("Recording what was installed", ("latentbrush:write-state", state.to_json()), weight=0.1)


@pytest.fixture
def layout(tmp_path):
    return layout_at(tmp_path / "server")


def install_plan(layout, *middle: Step) -> InstallPlan:
    return InstallPlan("install", (make_venv_python(layout), *middle, write_state()), None, layout)


class Recorder:
    def __init__(self, runner: InstallRunner) -> None:
        self.steps: list[tuple[int, int, str]] = []
        self.progress: list[float] = []
        self.lines: list[str] = []
        self.finished: list[tuple[bool, str]] = []
        runner.step_started.connect(lambda i, n, t: self.steps.append((i, n, t)))
        runner.progress.connect(self.progress.append)
        runner.output.connect(self.lines.append)
        runner.finished.connect(lambda ok, message: self.finished.append((ok, message)))


# ----------------------------------------------------------------------------- runner


def test_runner_runs_the_steps_in_order_with_their_env_and_logs_everything(qapp, layout):
    runner = InstallRunner()
    seen = Recorder(runner)
    plan = install_plan(layout,
                        py("Say hello", "import os; print('hello', os.environ['LB_TEST_VALUE'])", 3.0,
                           (("LB_TEST_VALUE", "42"),)),
                        py("Progress bar", "import sys; sys.stdout.write('10%\\r50%\\r100%\\n')"))
    runner.start(plan)
    spin_until(lambda: seen.finished, "the plan to finish")
    assert seen.finished == [(True, "")]
    assert [s[2] for s in seen.steps] == [s.title for s in plan.steps]
    assert seen.steps[0][:2] == (0, 4)
    assert "hello 42" in seen.lines and "100%" in seen.lines  # a \r-redrawn line shows its last state
    assert seen.progress == sorted(seen.progress) and seen.progress[-1] == 1.0
    assert seen.progress[1:3] == pytest.approx([1.0 / 5.1, 4.0 / 5.1])  # by weight (the 3.0 step after 1.0 of 5.1)
    assert is_installed(layout)
    log = layout.log_file.read_text(encoding="utf-8")
    assert "=== step 2 of 4: Say hello" in log and "hello 42" in log and "finished" in log


def test_a_failing_step_stops_the_plan_with_plain_words_and_the_log(qapp, layout):
    runner = InstallRunner()
    seen = Recorder(runner)
    fail = py("Installing PyTorch", "import sys; print('ERROR: No matching distribution found for torch==9'); "
                                    "sys.exit(1)")
    runner.start(install_plan(layout, fail))
    spin_until(lambda: seen.finished, "the failure")
    ok, message = seen.finished[0]
    assert not ok
    assert message.startswith("Installing PyTorch failed: the packages could not be downloaded"), message
    assert str(layout.log_file) in message
    assert [s[2] for s in seen.steps] == ["Creating the Python environment", "Installing PyTorch"]  # stopped there
    assert not is_installed(layout)
    assert "No matching distribution found" in layout.log_file.read_text(encoding="utf-8")


def test_a_program_that_does_not_exist_fails_the_step(qapp, layout):
    runner = InstallRunner()
    seen = Recorder(runner)
    runner.start(InstallPlan("install", (Step("Creating the venv", ("/nonexistent/python3", "-m", "venv")),),
                             None, layout))
    spin_until(lambda: seen.finished, "the failure")
    assert seen.finished[0][0] is False and seen.finished[0][1].startswith("Creating the venv failed")


def test_cancel_kills_the_running_step(qapp, layout):
    runner = InstallRunner()
    seen = Recorder(runner)
    runner.start(install_plan(layout, py("Waiting", "import time; print('started', flush=True); time.sleep(120)")))
    spin_until(lambda: "started" in seen.lines, "the long step to start")
    runner.cancel()
    spin_until(lambda: seen.finished, "the cancel")
    assert seen.finished == [(False, CANCELLED)]
    assert not runner.running and not is_installed(layout)


def test_an_internal_step_that_fails_ends_the_plan(qapp, layout, tmp_path):
    runner = InstallRunner()
    seen = Recorder(runner)
    outside = tmp_path / "precious"
    outside.mkdir()
    plan = InstallPlan("uninstall", (Step("Removing the venv", ("latentbrush:remove-tree", str(outside))),),
                       None, layout)
    runner.start(plan)
    spin_until(lambda: seen.finished, "the refusal")
    assert seen.finished[0][0] is False and "outside" in seen.finished[0][1]
    assert outside.is_dir()


# ----------------------------------------------------------------------------- panel


class Dialogs:
    """Answers the confirmations and records the "Show log" clicks."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []
        self.opened: list[Path] = []

    def confirm(self, _parent, title: str, text: str) -> bool:
        self.asked.append((title, text))
        return self.answer

    def panel(self, layout, planner) -> InstallPanel:
        return InstallPanel(layout, planner, confirm=self.confirm, open_log=self.opened.append)


def planner_for(layout, *middle: Step):
    def plan(action: str) -> InstallPlan:
        if action == "uninstall":
            return InstallPlan("uninstall", (Step("Removing the Python environment",
                                                  ("latentbrush:remove-tree", str(layout.venv))),
                                             Step("Removing the install record",
                                                  ("latentbrush:remove-file", str(layout.state_file)))),
                               None, layout, ("The models folder is kept.",))
        return InstallPlan(action, install_plan(layout, *middle).steps, None, layout)
    return plan


def waits_for(path: Path) -> Step:
    """A step that runs until the test creates ``path`` (so the test sees the panel while it runs)."""
    code = f"import pathlib, time\np = pathlib.Path({str(path)!r})\nwhile not p.exists(): time.sleep(0.01)\n" \
           "print('Collecting torch', flush=True)"
    return py("Downloading", code)


class Ends:
    """The panel's finished runs, in order."""

    def __init__(self, panel: InstallPanel) -> None:
        self.panel = panel
        self.runs: list[tuple[bool, str]] = []
        panel.runner.finished.connect(lambda ok, message: self.runs.append((ok, message)))

    def wait(self, count: int) -> tuple[bool, str]:
        spin_until(lambda: len(self.runs) >= count, f"run {count} to finish")
        return self.runs[count - 1]


def test_panel_installs_after_confirming_and_reports_the_server(qapp, layout, tmp_path):
    dialogs = Dialogs()
    release = tmp_path / "release"
    panel = dialogs.panel(layout, planner_for(layout, waits_for(release)))
    ready: list = []
    panel.server_ready.connect(ready.append)
    assert panel.install.isVisibleTo(panel) and not panel.manage.isVisibleTo(panel)
    assert "2.5 GB" in panel.info.text() and str(layout.root) in panel.info.text()
    assert not panel.show_log.isVisibleTo(panel)  # nothing logged yet
    panel.install.click()
    assert panel.planning and not panel.install.isEnabled()  # the plan is made off the GUI thread
    spin_until(lambda: panel.running, "the plan and the confirmation")
    assert dialogs.asked and str(layout.root) in dialogs.asked[0][1]
    assert panel.bar.isVisibleTo(panel) and panel.cancel.isVisibleTo(panel) and panel.show_log.isVisibleTo(panel)
    assert not panel.install.isVisibleTo(panel)
    release.write_text("go")
    spin_until(lambda: ready, "the install")
    assert ready == [layout] and panel.installed
    assert panel.manage.isVisibleTo(panel) and not panel.install.isVisibleTo(panel)
    assert "latentbrush 0.1.0" in panel.info.text() and panel.message.text() == "Installed."
    panel.show_log.click()
    assert dialogs.opened == [layout.log_file]


def test_panel_shows_the_step_the_bar_and_the_last_line_while_running(qapp, layout):
    dialogs = Dialogs()
    code = "import time; print('Downloading torch-2.14.1.whl (900 MB)', flush=True); time.sleep(120)"
    panel = dialogs.panel(layout, planner_for(layout, py("Installing PyTorch", code, 10.0)))
    ends = Ends(panel)
    panel.run_action("install")
    spin_until(lambda: "Downloading torch" in panel.last_line.text(), "the step's output")
    assert panel.step.text() == "Step 2 of 3: Installing PyTorch…"
    assert panel.bar.value() == round(1.0 / 11.1 * 1000)
    panel.cancel.click()
    assert ends.wait(1) == (False, CANCELLED)
    assert panel.message.text() == CANCELLED and "cancelled" in panel.message.text().lower()
    assert panel.install.isVisibleTo(panel) and not panel.installed and not panel.cancel.isVisibleTo(panel)


def test_panel_failure_shows_the_words_and_the_log_button_and_switches_nothing(qapp, layout):
    dialogs = Dialogs()
    fail = py("Installing PyTorch", "import sys; print('OSError: [Errno 28] No space left on device'); sys.exit(1)")
    panel = dialogs.panel(layout, planner_for(layout, fail))
    ends = Ends(panel)
    ready: list = []
    panel.server_ready.connect(ready.append)
    panel.run_action("install")
    assert ends.wait(1)[0] is False
    assert "the disk is full" in panel.message.text() and panel.message.isVisibleTo(panel)
    assert panel.show_log.isVisibleTo(panel) and panel.install.isVisibleTo(panel)
    assert ready == [] and not panel.installed


def test_panel_does_nothing_when_the_confirmation_is_declined(qapp, layout):
    dialogs = Dialogs(answer=False)
    panel = dialogs.panel(layout, planner_for(layout))
    assert panel.run_action("install") is True
    spin_until(lambda: dialogs.asked and not panel.planning, "the confirmation")
    assert not panel.running and not layout.log_file.exists() and panel.install.isEnabled()


def test_panel_says_why_a_plan_is_impossible(qapp, layout):
    def planner(_action: str) -> InstallPlan:
        raise InstallError("no Python 3.10 or newer was found, and no uv")

    dialogs = Dialogs()
    panel = dialogs.panel(layout, planner)
    panel.run_action("install")
    spin_until(lambda: not panel.planning, "the plan")
    assert dialogs.asked == [] and "no Python 3.10" in panel.message.text() and not panel.running


def test_update_stops_the_server_first_and_uninstall_keeps_the_models(qapp, layout):
    dialogs = Dialogs()
    panel = dialogs.panel(layout, planner_for(layout))
    ends = Ends(panel)
    stopped: list[bool] = []
    panel._before_change = lambda: stopped.append(True)
    removed: list[bool] = []
    panel.server_removed.connect(lambda: removed.append(True))
    panel.run_action("install")
    assert ends.wait(1) == (True, "")
    assert stopped == []  # nothing installed yet: nothing to stop
    (layout.models_dir / "my-model.safetensors").write_bytes(b"weights")

    panel.menu_actions["update"].trigger()
    assert ends.wait(2) == (True, "")
    assert stopped == [True] and panel.message.text() == "Updated."

    panel.menu_actions["uninstall"].trigger()
    assert ends.wait(3) == (True, "")
    assert "The models folder is kept." in dialogs.asked[-1][1]
    assert removed == [True] and stopped == [True, True]
    assert not panel.installed and not layout.venv.exists()
    assert (layout.models_dir / "my-model.safetensors").read_bytes() == b"weights"
    assert panel.install.isVisibleTo(panel)


def test_the_log_and_the_output_hide_a_private_index_login(qapp, layout):
    runner = InstallRunner()
    seen = Recorder(runner)
    url = "https://ann:s3cret@pypi.example.org/simple"
    runner.start(InstallPlan("install", (py("Installing", f"print('Looking in indexes: {url}')"),), None, layout))
    spin_until(lambda: seen.finished, "the plan")
    assert "Looking in indexes: https://***@pypi.example.org/simple" in seen.lines
    assert "s3cret" not in layout.log_file.read_text(encoding="utf-8")


def test_confirm_text_names_the_place_the_size_and_the_notes(layout):
    plan = InstallPlan("install", (), None, layout, ("PyTorch changes from CPU to CUDA.",))
    text = confirm_text(plan)
    assert str(layout.root) in text and "2.5 GB" in text and "PyTorch changes" in text
    assert str(layout.log_file) in text


def test_the_managed_command_survives_the_command_field(tmp_path):
    layout = layout_at(tmp_path / "a folder with spaces" / "server")
    assert split_command(managed_command(layout)) == [str(layout.python), "-m", "latentbrush.backend",
                                                      "--models", str(layout.models_dir)]
    assert join_command(["C:\\Users\\A B\\python.exe", "-m", "x"], "win32") == '"C:\\Users\\A B\\python.exe" -m x'
