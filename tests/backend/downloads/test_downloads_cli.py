"""``latentbrush-server models list|download`` and ``doctor`` through the server's own entry point."""

from __future__ import annotations

import json

import pytest
from conftest import WEIGHTS
from latentbrush.backend.__main__ import main


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def models(tmp_path):
    return tmp_path / "models"  # the download makes it


def test_download_with_json_progress(hub, sets_file, models, capsys):
    code = main(["models", "download", "tiny", "--models", str(models), "--yes", "--progress", "json",
                 "--sets-file", str(sets_file)])
    events = json_lines(capsys.readouterr().out)
    assert code == 0
    assert events[0]["event"] == "plan"
    assert events[-1] == {"event": "done", "downloaded_bytes": events[0]["total_bytes"]}
    assert [f["dest"] for f in events[0]["files"]] == [
        "upscale/4x-tiny.safetensors", "taesd/diffusion_pytorch_model.safetensors", "taesd/config.json"]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and set(progress[0]) == {"event", "file", "done_bytes", "total_bytes", "overall_done",
                                             "overall_total"}
    assert progress[-1]["overall_done"] == progress[-1]["overall_total"] == events[0]["total_bytes"]
    assert (models / "upscale/4x-tiny.safetensors").read_bytes() == WEIGHTS


def test_nothing_downloads_unless_confirmed(hub, sets_file, models, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", None)  # no terminal to ask on
    code = main(["models", "download", "tiny", "--models", str(models), "--sets-file", str(sets_file)])
    err = capsys.readouterr().err
    assert code == 2 and "--yes" in err and "Total: 350.0 kB" in err
    assert not (models / "upscale").exists()
    assert not [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]


def test_a_gated_set_fails_with_the_licence_message_as_a_json_error(hub, sets_file, models, capsys):
    code = main(["models", "download", "locked", "--models", str(models), "--yes", "--progress", "json",
                 "--sets-file", str(sets_file)])
    events = json_lines(capsys.readouterr().out)
    assert code == 1 and events[-1]["event"] == "error"
    assert "fake/gated" in events[-1]["message"] and "HF_TOKEN" in events[-1]["message"]


def test_unknown_sets_and_a_missing_models_folder_are_usage_errors(hub, sets_file, models, capsys):
    assert main(["models", "download", "nope", "--models", str(models), "--sets-file", str(sets_file)]) == 2
    assert "known: tiny, locked" in capsys.readouterr().err
    assert main(["models", "download", "tiny", "--sets-file", str(sets_file)]) == 2
    assert "--models DIR" in capsys.readouterr().err


def test_models_list_shows_what_the_folder_has(hub, sets_file, models, capsys):
    models.mkdir()
    assert main(["models", "list", "--json", "--models", str(models), "--sets-file", str(sets_file)]) == 0
    before = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sets"]}
    assert before["tiny"]["state"] == "missing" and before["locked"]["gated"] is True
    assert main(["models", "download", "tiny", "--models", str(models), "--yes", "--sets-file", str(sets_file)]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--json", "--models", str(models), "--sets-file", str(sets_file)]) == 0
    after = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sets"]}
    assert after["tiny"]["state"] == "installed" and after["locked"]["state"] == "missing"
    assert [i["state"] for i in after["tiny"]["items"]] == ["installed", "installed"]


def test_models_list_of_the_shipped_sets(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "sd35" in out and "gated" in out and "flux-schnell" in out


def _tiny_models_folder(root):
    (root / "mymodel" / "unet").mkdir(parents=True)
    (root / "mymodel" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (root / "mymodel" / "unet" / "config.json").write_text('{"in_channels": 4, "cross_attention_dim": 768}')
    (root / "upscale").mkdir()
    (root / "upscale" / "4x-tiny.safetensors").write_bytes(b"listed by name, not opened")
    (root / "controlnet" / "control_canny").mkdir(parents=True)
    (root / "controlnet" / "control_canny" / "config.json").write_text('{"_class_name": "ControlNetModel"}')
    (root / "taesd").mkdir()
    (root / "taesd" / "config.json").write_text('{"_class_name": "AutoencoderTiny"}')


def test_doctor_reports_device_and_the_folders_models(tmp_path, sets_file, capsys):
    import torch

    root = tmp_path / "models"
    _tiny_models_folder(root)
    assert main(["doctor", "--json", "--models", str(root), "--sets-file", str(sets_file)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"]["version"] == torch.__version__
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert report["device"]["chosen"] == "cpu" and report["torch"]["cuda_available"] is False
    kinds = report["models"]["kinds"]
    assert kinds["checkpoints"] == ["mymodel"]
    assert kinds["upscalers"] == ["4x-tiny.safetensors"] and kinds["controlnets"] == ["control_canny"]
    taesd = report["models"]["taesd"]
    assert taesd["sd15"] == str(root / "taesd") and taesd["flux"] is None
    assert report["sets"] == {"tiny": "installed", "locked": "missing"}  # the upscaler and taesd/ are there
    assert any("TAESD for sdxl, sd3, flux" in p for p in report["problems"])


def test_doctor_without_a_models_folder_says_so(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "no models folder configured" in out and "device:" in out and "torch " in out
