"""``latentbrush server ...`` in-process: status, asking first, uninstall of a real folder, plain-words errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from latentbrush.plugin.cli.main import main
from latentbrush.plugin.core.install.layout import InstallLayout, layout_at
from latentbrush.plugin.core.install.state import InstallState


def server(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["server", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def fake_install(root: Path) -> InstallLayout:
    """What a finished install leaves behind, minus the packages."""
    layout = layout_at(root)
    layout.python.parent.mkdir(parents=True)
    layout.python.write_text("#!/bin/sh\n")
    (layout.venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    state = InstallState("0.1.0", "CPU only", ("torch==2.14.1",), None, "", "pip", "2026-01-01T00:00:00+00:00",
                         "2.14.1+cpu (CPU, no GPU found: runs on the CPU)")
    layout.state_file.write_text(state.to_json())
    (layout.models_dir / "loras").mkdir(parents=True)
    (layout.models_dir / "loras" / "ink.safetensors").write_bytes(b"lora")
    return layout


def test_status_of_nothing_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = server(capsys, "status", "--home", tmp_path / "lb")
    assert code == 0
    assert "not installed" in out and f"folder:      {tmp_path / 'lb'}" in out
    assert "Install it with: latentbrush server install" in out


def test_status_of_an_install_shows_versions_and_the_start_command(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    layout = fake_install(tmp_path / "lb")
    code, out, _ = server(capsys, "status", "--home", layout.root)
    assert code == 0 and "latentbrush server: installed" in out
    assert "latentbrush 0.1.0 (from the package index)" in out and "2.14.1+cpu" in out
    assert "(1 files)" in out
    assert f"Start it with: {layout.python} -m latentbrush.backend --models {layout.models_dir}" in out
    code, out, _ = server(capsys, "status", "--home", layout.root, "--progress", "json")
    info = json.loads(out)
    assert info["installed"] is True and info["command"][0] == str(layout.python)
    assert info["torch_build"].startswith("2.14.1+cpu") and info["machine"]["gpu"]


def test_install_asks_first_and_changes_nothing_without_yes(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = server(capsys, "install", "--home", tmp_path / "lb")  # pytest's stdin is no terminal
    assert code == 2 and "add --yes" in err and "downloads about 2.5 GB (torch)" in err
    assert not (tmp_path / "lb").exists()


def test_install_over_an_install_points_at_update_and_repair(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    layout = fake_install(tmp_path / "lb")
    code, _, err = server(capsys, "install", "--yes", "--home", layout.root)
    assert code == 0 and "already installed" in err and "server update" in err and "server repair" in err


def test_update_before_install_and_a_missing_wheel_are_usage_errors(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = server(capsys, "update", "--yes", "--home", tmp_path / "lb")
    assert code == 2 and "not installed yet" in err and "Traceback" not in err
    code, _, err = server(capsys, "install", "--yes", "--home", tmp_path / "lb", "--wheel", tmp_path / "no.whl")
    assert code == 2 and "no such file" in err


def test_uninstall_removes_the_env_and_keeps_the_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = fake_install(tmp_path / "lb")
    code, _, err = server(capsys, "uninstall", "--yes", "--home", layout.root, "--progress", "text")
    assert code == 0 and "uninstalled" in err and "is kept" in err
    assert not layout.venv.exists() and not layout.state_file.exists()
    assert (layout.models_dir / "loras" / "ink.safetensors").read_bytes() == b"lora"
    assert "(in-process) latentbrush:remove-tree" in layout.log_file.read_text()
    code, _, err = server(capsys, "uninstall", "--yes", "--home", layout.root)
    assert code == 0 and "Nothing to uninstall" in err
    code, out, _ = server(capsys, "uninstall", "--yes", "--models", "--home", layout.root, "--progress", "json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["plan", "step", "step", "step", "done"]
    assert [e["index"] for e in events if e["event"] == "step"] == [0, 1, 2]
    assert events[1]["progress"] == 0.0 < events[2]["progress"] < events[3]["progress"] < events[4]["progress"] == 1
    assert not layout.models_dir.exists()
