"""The first-run notice (only the built-in test model) and the model download dialog over real processes.

The processes are small Python scripts that print what ``latentbrush.backend models list --json`` and
``models download SET --progress json`` print: a JSON list of sets, then one JSON event a line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from latentbrush.plugin.hosts.krita.first_run import FirstRunNotice, only_builtin_models
from latentbrush.plugin.hosts.krita.model_download import (
    DownloadDialog,
    DownloadEvent,
    download_command,
    list_command,
    parse_event,
    parse_sets,
)
from latentbrush.protocol.messages import Limits, ModelInfo, ServerHello
from qt_wait import spin_until

PY = sys.executable
# as ``models list --json --models DIR`` prints them (backend/downloads/cli.py), items left out
SETS = [{"name": "sd15", "title": "SD 1.5 (with inpainting)", "size_bytes": 4_300_000_000, "gated": False,
         "state": "missing"},
        {"name": "sdxl", "title": "SDXL base", "size_bytes": 6_900_000_000, "gated": False, "state": "partial"},
        {"name": "sd35", "title": "SD 3.5 Medium", "size_bytes": 9_000_000_000, "gated": True, "state": "installed"}]


def hello(*names: str, source: str = "builtin") -> ServerHello:
    """A hello offering ``names``: the "tiny*" ones with ``source`` (the backend says "builtin"), others as files."""
    models = tuple(ModelInfo(n, "tiny" if n.startswith("tiny") else "sd15", n == "tiny-inpaint", 512,
                             source if n.startswith("tiny") else "file") for n in names)
    return ServerHello(protocol=1, minor=1, server="latentbrush", client_id="c", resumed=False, device="cpu",
                       dtype="float32", models=models, upscalers=(), samplers=("Euler",),
                       limits=Limits(max_frame_bytes=2**26, max_pixels=2**22, max_queue=8, max_batch=4, max_steps=150))


def printer(*lines: object, exit_code: int = 0, sleep_s: float = 0) -> list[str]:
    """A process that prints ``lines`` (dicts as JSON), one a line, then exits with ``exit_code``."""
    text = "\n".join(json.dumps(x) if isinstance(x, dict) else str(x) for x in lines)
    code = f"import sys, time; print({text!r}, flush=True); time.sleep({sleep_s}); sys.exit({exit_code})"
    return [PY, "-c", code]


def test_only_the_builtin_models_mean_first_run():
    assert only_builtin_models(hello("tiny", "tiny-inpaint"))
    assert only_builtin_models(hello("tiny"))
    # what the real backend offers with an empty models folder (seen in the Krita install e2e)
    everything = ("tiny", "tiny-inpaint", "tiny-sdxl", "tiny-sdxl-refiner", "tiny-sd3", "tiny-flux")
    assert only_builtin_models(hello(*everything))
    assert only_builtin_models(hello(*everything, source=""))  # a server that leaves the source out
    assert not only_builtin_models(hello("tiny", "tiny-lookalike", source=""))
    assert not only_builtin_models(hello("tiny", "tiny-inpaint", "dreamshaper_8"))
    assert not only_builtin_models(hello())
    assert not only_builtin_models(None)


def test_the_notice_shows_for_tiny_only_hellos_and_its_link_asks_for_the_download(qapp):
    notice = FirstRunNotice()
    asked: list[bool] = []
    notice.download_requested.connect(lambda: asked.append(True))
    assert not notice.isVisibleTo(notice.parentWidget() or notice) and notice.isHidden()
    notice.set_hello(hello("tiny", "tiny-inpaint"))
    assert not notice.isHidden()
    assert "Only the built-in test model is installed: it paints noise." in notice.text()
    assert "Download models (SD 1.5, 8.5 GB)" in notice.text() and notice.wordWrap()
    notice.linkActivated.emit("download")
    assert asked == [True]
    notice.set_hello(hello("tiny", "sd15-model"))
    assert notice.isHidden()
    notice.set_hello(None)
    assert notice.isHidden()


def test_parse_sets_keeps_the_servers_order_and_says_what_is_there_and_parse_event_reads_each_kind():
    sets = parse_sets(json.dumps({"models_dir": "/m", "sets": SETS}))
    assert [s.name for s in sets] == ["sd15", "sdxl", "sd35"] and sets[0].total_bytes == 4_300_000_000
    assert sets[0].label() == "SD 1.5 (with inpainting) — 4.3 GB"
    assert "partly there" in sets[1].label() and "already there" in sets[2].label() and "HF_TOKEN" in sets[2].label()
    assert parse_sets(json.dumps(SETS)) == sets
    marked = parse_sets(json.dumps([{"name": "a", "size_bytes": 1}, {"name": "b", "recommended": True}]))
    assert [s.name for s in marked] == ["b", "a"]
    assert parse_event('{"event": "plan", "total_bytes": 10, "files": 2}') == DownloadEvent("plan", total_bytes=10)
    assert parse_event(json.dumps({"event": "progress", "file": "unet.safetensors", "done_bytes": 3,
                                   "total_bytes": 8, "overall_done": 5, "overall_total": 10})) == \
        DownloadEvent("progress", "unet.safetensors", 5, 10)
    assert parse_event('{"event": "error", "message": "no network"}') == DownloadEvent("error", message="no network")
    assert parse_event('{"event": "done"}') == DownloadEvent("done")
    assert parse_event("Warning: something") is None and parse_event("[1, 2]") is None


def test_the_commands_are_the_servers_own(tmp_path):
    python, models = tmp_path / "venv" / "bin" / "python", tmp_path / "models"
    assert list_command(python, models) == [str(python), "-m", "latentbrush.backend", "models", "list", "--json",
                                            "--models", str(models)]
    assert download_command(python, "sd15", models) == [
        str(python), "-m", "latentbrush.backend", "models", "download", "sd15", "--yes", "--progress", "json",
        "--models", str(models)]


def dialog_with(download: list[str], asked: list[str] | None = None) -> DownloadDialog:
    def download_argv(name: str) -> list[str]:
        if asked is not None:
            asked.append(name)
        return download

    dialog = DownloadDialog(printer({"sets": SETS}), download_argv, Path("/models"))
    spin_until(lambda: dialog.sets.count() == 3, "the set list")
    return dialog


def test_the_dialog_lists_the_sets_with_sizes_then_follows_the_download_to_done(qapp):
    events = [{"event": "plan", "total_bytes": 4_300_000_000, "files": 2}, "some pip-ish warning",
              {"event": "progress", "file": "v1-5.safetensors", "done_bytes": 2_150_000_000,
               "total_bytes": 4_000_000_000, "overall_done": 2_150_000_000, "overall_total": 4_300_000_000},
              {"event": "done"}]
    asked: list[str] = []
    dialog = dialog_with(printer(*events, sleep_s=1), asked)
    assert dialog.sets.item(0).text() == "SD 1.5 (with inpainting) — 4.3 GB"
    assert dialog.total.text() == "Total: 4.3 GB" and dialog.download.isEnabled()
    assert "/models" in dialog.intro.text()
    downloaded: list[bool] = []
    dialog.downloaded.connect(lambda: downloaded.append(True))
    assert dialog.start_download()
    assert asked == ["sd15"] and dialog.close_button.text() == "Cancel"
    spin_until(lambda: dialog.bar.value() == 500, "the progress event")
    assert "v1-5.safetensors" in dialog.status.text() and "2.1 GB of 4.3 GB" in dialog.status.text()
    spin_until(lambda: downloaded, "the download to finish")
    assert dialog.bar.value() == 1000 and dialog.status.text().startswith("Done")


def test_an_error_event_is_shown_in_its_words(qapp):
    dialog = dialog_with(printer({"event": "plan", "total_bytes": 100}, {"event": "error", "message":
                                 "cannot reach huggingface.co: check the internet connection"}, exit_code=1))
    downloaded: list[bool] = []
    dialog.downloaded.connect(lambda: downloaded.append(True))
    dialog.start_download()
    spin_until(lambda: not dialog.process.running and "failed" in dialog.status.text(), "the failure")
    assert dialog.status.text() == "The download failed: cannot reach huggingface.co: check the internet connection"
    assert downloaded == [] and dialog.download.isEnabled() and dialog.close_button.text() == "Close"


def test_a_process_that_dies_without_an_event_says_how(qapp):
    dialog = dialog_with(printer("Traceback: KeyError 'models'", exit_code=2))
    dialog.start_download()
    spin_until(lambda: "exit code 2" in dialog.status.text(), "the failure")
    assert "KeyError" in dialog.status.text()


def test_cancel_kills_the_download(qapp):
    dialog = dialog_with(printer({"event": "plan", "total_bytes": 100}, sleep_s=120))
    dialog.start_download()
    spin_until(lambda: dialog.process.running, "the download to start")
    dialog.close_button.click()
    spin_until(lambda: not dialog.process.running, "the kill")
    assert dialog.status.text().startswith("Cancelled")


def test_a_failing_list_is_reported(qapp):
    dialog = DownloadDialog(printer("usage: latentbrush-server: invalid choice: 'models'", exit_code=2),
                            lambda name: [], None)
    spin_until(lambda: "could not list" in dialog.status.text(), "the failure")
    assert "invalid choice" in dialog.status.text() and not dialog.download.isEnabled()


def test_a_server_not_installed_from_here_gets_the_commands(qapp):
    dialog = DownloadDialog(None, None)
    text = dialog.commands.toPlainText()
    assert "latentbrush-server models download" in text and "--models" in text
    assert dialog.sets.isHidden() and dialog.download.isHidden()


def test_the_real_server_command_lists_its_sets_and_its_error_event_reaches_the_dialog(qapp, tmp_path, monkeypatch):
    """The contract with backend/downloads/cli.py, through the commands the docker runs (the venv's backend)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # downloads off: the command says so in an error event
    python, models = Path(sys.executable), tmp_path / "models"
    dialog = DownloadDialog(list_command(python, models), lambda name: download_command(python, name, models), models)
    spin_until(lambda: dialog.sets.count() > 0 or "could not" in dialog.status.text(), "the real set list")
    assert dialog.chosen() is not None and dialog.chosen().name == "sd15", dialog.status.text()
    assert dialog.chosen().total_bytes > 10**9 and dialog.total.text().endswith("GB")
    dialog.start_download()
    spin_until(lambda: not dialog.process.running and dialog.close_button.text() == "Close", "the download's end")
    assert dialog.status.text().startswith("The download failed: downloads are switched off"), dialog.status.text()
