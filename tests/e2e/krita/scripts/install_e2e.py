"""Inside real Krita: "Install local server" from the Connection tab, as a painter does it.

The plugin came from the zip with the bundled server wheel; ``LATENTBRUSH_SERVER_HOME`` points at an empty
folder. Click "Install local server", answer the confirmation with Yes, wait for the steps (a venv, PyTorch
from the local indexes, the bundled wheel), then the docker connects to the managed server it started by
itself; one Generate job with the built-in tiny model follows. Records what it saw; the asserts are in
test_krita_install_e2e.py.
"""

from __future__ import annotations

import os
import time

import docker_layout
import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.core.install.plan import bundled_wheel
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.install_panel import PACKAGE_DIR

try:
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication, QMessageBox
except ImportError:
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication, QMessageBox

INSTALL_LIMIT_S = float(os.environ.get("LB_E2E_INSTALL_LIMIT_S", "780"))
CONNECT_LIMIT_S = 240
JOB_LIMIT_S = 240


def answer_confirmation(results: dict, tries: int = 200) -> None:
    """Click Yes in the confirmation once it is up (it is modal: the click that opened it waits in it)."""
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        results["confirm_title"] = box.windowTitle()
        results["confirm_text"] = box.text()
        box.button(QMessageBox.StandardButton.Yes).click()
        return
    if tries > 0:
        QTimer.singleShot(50, lambda: answer_confirmation(results, tries - 1))


def run_e2e() -> bool:
    results: dict = {"ok": False}
    app = Krita.instance()
    app.setBatchmode(True)
    session = u.plugin_session(app)
    docker = find_docker(app.activeWindow())
    panel = docker.install_panel
    try:
        doc = u.new_document(256, 256)
        u.layout_for_screenshots(docker)
        u.paint_scene(doc)
        docker.show_tab("Connection")
        u.pump_events(200)
        results["layout_root"] = str(panel.layout_.root)
        results["bundled_wheel"] = str(bundled_wheel(PACKAGE_DIR))
        results["before"] = {"install_visible": panel.install.isVisible(), "info": panel.info.text(),
                             "manage_visible": panel.manage.isVisible(), "installed": panel.installed}
        t0 = time.time()
        steps: list[list] = []
        panel.runner.step_started.connect(lambda i, n, title: steps.append([i, n, title, round(time.time() - t0, 1)]))
        finished: list = []
        panel.runner.finished.connect(lambda ok, message: finished.append([ok, message]))
        lines: list[str] = []
        panel.runner.output.connect(lines.append)

        QTimer.singleShot(100, lambda: answer_confirmation(results))
        panel.install.click()  # plans off the GUI thread, then asks (answered above), then runs
        results["planning_after_click"] = panel.planning
        u.wait_until(lambda: panel.running or bool(finished) or (not panel.planning and "Cannot" in
                                                                 panel.message.text()), 60, "the install to start")
        results["running_after_click"] = panel.running
        if not panel.running and not finished:
            results["message"] = panel.message.text()
            return True
        results["progress_visible"] = panel.bar.isVisible() and panel.cancel.isVisible()
        # the README's picture: the Connection tab mid-install (step, bar, last output line, Cancel, Show log)
        u.wait_until(lambda: bool(finished) or any(s[2].startswith("Installing the latentbrush") for s in steps),
                     INSTALL_LIMIT_S, "the install's package step")
        results["screenshot_install"] = u.grab_window(os.path.join(os.environ["LB_E2E_OUT"], "krita-install.png"))
        try:
            u.wait_until(lambda: bool(finished), INSTALL_LIMIT_S, "the install")
        finally:
            results["install_seconds"] = round(time.time() - t0, 1)
            results["steps"] = steps
            results["finished"] = finished
            results["last_lines"] = lines[-15:]
            results["message"] = panel.message.text()
            results["log_button_visible"] = panel.show_log.isVisible()
            log_file = panel.layout_.log_file
            results["log_bytes"] = log_file.stat().st_size if log_file.exists() else 0
            if log_file.exists():
                text = log_file.read_text(encoding="utf-8", errors="replace")
                results["log_commands"] = [line[:200] for line in text.splitlines() if line.startswith("$ ")]
        if not finished[0][0]:
            return True
        results["installed"] = panel.installed
        results["info_after"] = panel.info.text()
        results["settings_command"] = app.readSetting("latentbrush", "server_command", "")
        results["settings_mode"] = app.readSetting("latentbrush", "server_mode", "")

        connect_start = time.time()
        u.wait_until(lambda: session.connected or session.state == "failed", CONNECT_LIMIT_S, "the connection")
        results["connect_seconds"] = round(time.time() - connect_start, 1)
        results["connected"] = session.connected
        results["server_output"] = session.server.recent_output()[-3000:]
        if not session.connected:
            return True
        results["runs_managed_server"] = docker.runs_managed_server()
        hello = session.client.hello
        results["models"] = [m.name for m in hello.models]
        u.pump_events(200)
        results["first_run_visible"] = docker.first_run.isVisible()
        results["first_run_text"] = docker.first_run.text()
        results["screenshot_first_run"] = u.grab_window(os.path.join(os.environ["LB_E2E_OUT"], "krita-first-run.png"))
        results["layout"] = docker_layout.measure(docker)
        results["manage_visible_after"] = not panel.manage.isHidden() and panel.install.isHidden()

        docker.show_tab("Generate")
        g = docker.generation
        g.prompt.setPlainText("a lighthouse")
        g.random_seed.setChecked(False)
        g.seed.setValue(3)
        g.batch.setValue(1)
        g.steps.setValue(4)
        before = u.paint_layers(doc)
        job_s = u.run_job(session, lambda: g.buttons["generate"].click(), JOB_LIMIT_S)
        record = session.history.records[-1]
        results["job"] = {"state": record.state, "error": record.error, "seconds": round(job_s, 1),
                          "model": record.request.model if record.request else None,
                          "layers_before": before, "layers": u.paint_layers(doc)}
        results["ok"] = True
    finally:
        try:
            if session.server.running:
                docker.connection.button.click()  # disconnect: stops the managed server this session started
                u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        except Exception as exc:  # the results already say what went wrong
            results["stop_error"] = str(exc)
        u.write_results(results)
    return True
