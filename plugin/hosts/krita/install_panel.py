"""The Connection tab's managed-server section: "Install local server", then Update / Repair / Uninstall.

It plans with ``core/install`` (pure), asks before doing anything, runs the plan with ``InstallRunner``
(QProcess, Krita stays usable), shows the step, a progress bar and the last output line, and keeps
"Show log" one click away. It switches nothing itself: ``server_ready(layout)`` after a good install,
update or repair and ``server_removed()`` after an uninstall let the docker change its settings, so a failed
or cancelled run leaves the docker as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from latentbrush.plugin.core.install.errors import InstallError
from latentbrush.plugin.core.install.layout import InstallLayout, is_installed, server_command
from latentbrush.plugin.core.install.machine import detect_machine
from latentbrush.plugin.core.install.plan import InstallPlan, bundled_wheel, find_tools, make_plan
from latentbrush.plugin.core.install.state import read_state

from ...qt import (
    QAction,
    QDesktopServices,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    Qt,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .install_runner import InstallRunner
from .server_process import join_command

DOWNLOAD_SIZE = "about 2.5 GB"
PACKAGE_DIR = Path(__file__).resolve().parents[3]  # the latentbrush package: its wheels/ holds the bundled wheel
MANAGE_ACTIONS = (("update", "Update"), ("repair", "Repair"), ("uninstall", "Uninstall…"))
DONE_TEXT = {"install": "Installed.", "update": "Updated.", "repair": "Repaired.",
             "uninstall": "Uninstalled: the server's Python environment is gone, your models are kept."}

Planner = Callable[[str], InstallPlan]  # action -> plan; raises InstallError
Confirm = Callable[[QWidget, str, str], bool]  # (parent, title, text) -> go ahead?


def default_planner(layout: InstallLayout, package_dir: Path = PACKAGE_DIR) -> Planner:
    """Plans for this computer: its GPU's torch build, uv or a system Python, the wheel the plugin bundles."""
    def plan(action: str) -> InstallPlan:
        return make_plan(action, layout, detect_machine(), find_tools(), bundled_wheel(package_dir))
    return plan


def ask(parent: QWidget, title: str, text: str) -> bool:
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(parent, title, text, buttons.Yes | buttons.Cancel, buttons.Cancel)
    return bool(answer == buttons.Yes)


def open_file(path: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def managed_command(layout: InstallLayout) -> str:
    return join_command(server_command(layout))


def confirm_text(plan: InstallPlan) -> str:
    """What the confirmation says: what happens, where, how big, and the plan's notes."""
    layout = plan.layout
    if plan.action == "uninstall":
        lines = [f"Remove the local server from {layout.root}?"]
    else:
        verb = {"install": "Install", "update": "Update", "repair": "Repair"}.get(plan.action, plan.action)
        lines = [f"{verb} the latentbrush server in {layout.root}?"]
        if plan.action == "install":
            lines.append(f"It downloads PyTorch and the server's libraries ({DOWNLOAD_SIZE}) and takes a few minutes;"
                         " Krita stays usable meanwhile.")
        if plan.torch is not None:
            lines.append(f"PyTorch build: {plan.torch.label}.")
    lines += list(plan.notes)
    lines.append(f"Everything is written to the log {layout.log_file}.")
    return "\n\n".join(lines)


class InstallPanel(QWidget):
    """The managed server's section. ``before_change()`` runs before a plan that changes an installed server
    (the docker stops the server it runs from there)."""

    server_ready = pyqtSignal(object)  # InstallLayout, after install / update / repair succeeded
    server_removed = pyqtSignal()
    _planned = pyqtSignal(str, object)  # from the planning thread: action, InstallPlan or the reason it cannot be

    def __init__(self, layout: InstallLayout, planner: Planner | None = None, *, confirm: Confirm = ask,
                 open_log: Callable[[Path], None] = open_file, before_change: Callable[[], None] = lambda: None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = layout
        self._planner = planner or default_planner(layout)
        self._confirm = confirm
        self._open_log = open_log
        self._before_change = before_change
        self._action = ""
        self.planning = False
        self._planned.connect(self._plan_ready)
        self.runner = InstallRunner(self)

        self.info = QLabel()
        self.info.setObjectName("latentbrush_install_info")
        self.info.setWordWrap(True)
        self.install = QPushButton("Install local server")
        self.install.setObjectName("latentbrush_install_server")
        self.install.clicked.connect(lambda: self.run_action("install"))
        self.manage = QToolButton()
        self.manage.setObjectName("latentbrush_manage_server")
        self.manage.setText("Local server")
        self.manage.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.manage)
        self.menu_actions: dict[str, QAction] = {}
        for action, title in MANAGE_ACTIONS:
            item = menu.addAction(title)
            item.triggered.connect(lambda _checked=False, a=action: self.run_action(a))
            self.menu_actions[action] = item
        self.manage.setMenu(menu)
        self.show_log = QPushButton("Show log")
        self.show_log.setObjectName("latentbrush_install_log")
        self.show_log.clicked.connect(lambda: self._open_log(self.layout_.log_file))
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("latentbrush_install_cancel")
        self.cancel.clicked.connect(self.runner.cancel)
        self.step = QLabel()
        self.step.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.last_line = QLabel()
        self.last_line.setObjectName("latentbrush_install_output")
        self.last_line.setTextFormat(Qt.TextFormat.PlainText)
        self.last_line.setStyleSheet("color: #888")
        self.message = QLabel()
        self.message.setObjectName("latentbrush_install_message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.runner.step_started.connect(self._step_started)
        self.runner.progress.connect(lambda fraction: self.bar.setValue(round(fraction * 1000)))
        self.runner.output.connect(self._output)
        self.runner.finished.connect(self._finished)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.install, self.manage, self.cancel):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.show_log)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 4, 0, 0)
        box.setSpacing(2)
        for widget in (self.info, self.step, self.bar, self.last_line):
            box.addWidget(widget)
        box.addLayout(row)
        box.addWidget(self.message)
        self.refresh()

    @property
    def installed(self) -> bool:
        return is_installed(self.layout_)

    @property
    def running(self) -> bool:
        return self.runner.running

    def refresh(self) -> None:
        """Show what is there now: the Install button, or the installed server with its menu."""
        running, installed = self.running, self.installed
        self.info.setText(self._info_text(installed))
        self.install.setEnabled(not self.planning)
        self.manage.setEnabled(not self.planning)
        self.install.setVisible(not running and not installed)
        self.manage.setVisible(not running and installed)
        self.cancel.setVisible(running)
        for widget in (self.step, self.bar, self.last_line):
            widget.setVisible(running)
        self.show_log.setVisible(running or self.layout_.log_file.is_file())
        self.message.setVisible(bool(self.message.text()))

    def _info_text(self, installed: bool) -> str:
        root = self.layout_.root
        if not installed:
            return (f"No local server yet: “Install local server” puts the latentbrush server with PyTorch "
                    f"({DOWNLOAD_SIZE} download) into {root}.")
        state = read_state(self.layout_.state_file)
        what = f"latentbrush {state.version}, torch {state.torch_build or state.torch_label}" if state else ""
        return f"Local server installed in {root}" + (f" ({what})." if what else ".")

    def run_action(self, action: str) -> bool:
        """Plan ``action`` (off the GUI thread: it probes the system's Pythons), then ask and run it.
        False when another action is under way."""
        if self.running or self.planning:
            return False
        self.planning = True
        self._say("Looking at this computer…")
        threading.Thread(target=self._plan, args=(action,), daemon=True, name="latentbrush-install-plan").start()
        return True

    def _plan(self, action: str) -> None:
        try:
            result: object = self._planner(action)
        except InstallError as exc:
            result = str(exc)
        except Exception as exc:  # an unexpected failure must reach the painter, not die in the thread
            result = f"{type(exc).__name__}: {exc}"
        self._planned.emit(action, result)

    def _plan_ready(self, action: str, plan: object) -> None:
        self.planning = False
        self._say("")
        if not isinstance(plan, InstallPlan):
            self._say(f"Cannot {action} the local server: {plan}")
            return
        title = "Uninstall the local server" if action == "uninstall" else f"{action.capitalize()} the local server"
        if not self._confirm(self, title, confirm_text(plan)):
            return
        if action != "install" or self.installed:
            self._before_change()
        self._action = action
        self.message.setText("")
        self.last_line.setText("")
        self.step.setText("Starting…")
        self.bar.setValue(0)
        self.runner.start(plan)
        self.refresh()

    def _step_started(self, index: int, count: int, title: str) -> None:
        self.step.setText(f"Step {index + 1} of {count}: {title}…")
        self.last_line.setText("")

    def _output(self, line: str) -> None:
        text = " ".join(line.split())
        metrics = self.last_line.fontMetrics()
        width = max(120, self.last_line.width())
        self.last_line.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, width))
        self.last_line.setToolTip(text)

    def _finished(self, ok: bool, message: str) -> None:
        self._say(DONE_TEXT.get(self._action, "Done.") if ok else message)
        self.refresh()
        if ok and self._action == "uninstall":
            self.server_removed.emit()
        elif ok:
            self.server_ready.emit(self.layout_)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.refresh()
