"""Inside real Krita with the real backend: styles in the docker (issue 15 item 3).

A painter's style file is written into latentbrush's config folder (under the e2e HOME) and the Style row
re-reads the folders; then, through the docker as a painter uses it: connect in local mode, measure the
Generate tab (the style row must not make it scroll), pick the built-in "Ink sketch" in the Style combo and
press "From noise", then pick the painter's own style and do the same. Records what each job asked the
server for (its request) and what Krita remembered; the asserts are in test_krita_style_e2e.py.
"""

from __future__ import annotations

import json

import docker_layout
import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.core.styles import user_styles_dir
from latentbrush.plugin.hosts.krita.extension import find_docker

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
MINE = {"name": "E2E harbour", "prompt": "foggy harbour, {prompt}, muted colors", "negative_prompt": "sunny",
        "sampler": "Euler", "steps": 5, "cfg": 4.5, "live": {"steps": 3, "cfg": 2.0}}


def pick(picker, name: str) -> None:
    """What choosing an entry of the combo does: the index changes and ``activated`` fires."""
    index = picker.combo.findData(name)
    if index < 0:
        raise RuntimeError(f"no style {name!r} in the combo")
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)
    u.pump_events(50)


def generate(docker, session) -> dict:
    docker.generation.buttons["generate"].click()
    u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the job to finish")
    record = session.history.records[-1]
    request = record.request
    return {"state": record.state, "error": record.error, "layers": u.paint_layers(docker._app.activeDocument()),
            "prompt": request.prompt if request else None, "negative": request.negative_prompt if request else None,
            "steps": request.steps if request else None, "cfg": request.cfg if request else None,
            "sampler": request.sampler if request else None, "total": record.total}


def run_e2e() -> bool:
    results: dict = {"ok": False}
    app = Krita.instance()
    app.setBatchmode(True)
    session = u.plugin_session(app)
    docker = find_docker(app.activeWindow())
    g = docker.generation
    try:
        folder = user_styles_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "e2e-harbour.json").write_text(json.dumps(MINE), encoding="utf-8")
        g.style_picker.reload()
        results["user_dir"] = str(folder)
        results["combo"] = [g.style_picker.combo.itemText(i) for i in range(g.style_picker.combo.count())]
        results["initial_style"] = g.style_picker.current_name()

        doc = u.new_document(256, 256)
        u.layout_for_screenshots(docker)
        u.paint_scene(doc)
        results["connect_seconds"] = u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connected"] = session.connected
        if not session.connected:
            results["server_output"] = session.server.recent_output()
            return True
        results["layout"] = docker_layout.measure(docker)
        docker.show_tab("Generate")
        g.prompt.setPlainText("a lighthouse")
        g.negative.setPlainText("people")
        g.random_seed.setChecked(False)
        g.seed.setValue(7)
        g.batch.setValue(1)

        pick(g.style_picker, "Ink sketch")
        results["ink_widgets"] = {"steps": g.steps.value(), "cfg": g.cfg.value(), "sampler": g.sampler.currentText(),
                                  "live_steps": docker.live_panel.steps.value()}
        results["ink"] = generate(docker, session)
        results["remembered"] = app.readSetting("latentbrush", "style", "")

        pick(g.style_picker, "E2E harbour")
        results["mine"] = generate(docker, session)
        op, live = docker._live_settings()
        results["mine_live"] = {"op": op, "prompt": live.prompt, "steps": live.steps, "cfg": live.cfg,
                                "sampler": live.sampler}
        results["remembered_after"] = app.readSetting("latentbrush", "style", "")
        results["ok"] = True
    finally:
        try:
            docker.connection.button.click()  # disconnect: stops the server this session started
            u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        except Exception as exc:  # the results already say what went wrong
            results["stop_error"] = str(exc)
        u.write_results(results)
    return True
