"""The steps of install / update / repair / uninstall per machine, with uv and without."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import pytest
from latentbrush.plugin.core.install.errors import InstallError
from latentbrush.plugin.core.install.layout import InstallLayout, default_layout, layout_at
from latentbrush.plugin.core.install.machine import Machine, TorchChoice
from latentbrush.plugin.core.install.plan import InstallPlan, Step, Tools, bundled_wheel, make_plan
from latentbrush.plugin.core.install.state import InstallState

PINS = ("torch==2.14.1", "torchvision==0.29.1")
UV = Tools("/usr/bin/uv", None, "3.11")
PIP = Tools(None, ("/usr/bin/python3.12",), "3.12")
WIN_UV = Tools(r"C:\Users\Ann\.local\bin\uv.exe", None, "3.11")
WIN_PY = Tools(None, (r"C:\Windows\py.exe", "-3.12"), "3.12")
NO_TOOLS = Tools(None, None)
LINUX = layout_at(Path("/home/ann/.local/share/latentbrush/server"), "linux")
MAC = default_layout("darwin", {"HOME": "/Users/ann"})
WINDOWS = default_layout("win32", {"LOCALAPPDATA": r"C:\Users\Ann\AppData\Local"})
WHEEL = Path("/tmp/dist/latentbrush-0.1.0-py3-none-any.whl")


def plan(action: str, layout: InstallLayout, gpu: str, tools: Tools, wheel: Path | None = None,
         platform: str = "linux", **kw: object) -> InstallPlan:
    machine = Machine(platform, "arm64" if platform == "darwin" else "x86_64", gpu)
    return make_plan(action, layout, machine, tools, wheel, env=kw.pop("env", {}), version="0.1.0",  # type: ignore[arg-type]
                     state=kw.pop("state", None), **kw)  # type: ignore[arg-type]


def argvs(p: InstallPlan) -> list[tuple[str, ...]]:
    return [s.argv for s in p.steps]


def titled(p: InstallPlan, word: str) -> Step:
    (step,) = [s for s in p.steps if word in s.title]
    return step


def installed_state(torch: TorchChoice, source: str = "") -> InstallState:
    return InstallState("0.1.0", torch.label, torch.requirements, torch.index_url, source, "pip")


def test_linux_nvidia_with_pip_from_the_package_index() -> None:
    p = plan("install", LINUX, "nvidia", PIP)
    py = str(LINUX.python)
    assert argvs(p)[:5] == [
        ("latentbrush:remove-tree", str(LINUX.venv)),  # a left-over venv goes first
        ("/usr/bin/python3.12", "-m", "venv", str(LINUX.venv)),
        (py, "-m", "pip", "install", "--upgrade", "pip"),
        (py, "-m", "pip", "install", *PINS),  # PyPI's default Linux torch is the CUDA build
        (py, "-m", "pip", "install", "latentbrush[backend]==0.1.0", *PINS),
    ]
    check, state = p.steps[5:]
    assert check.argv[:2] == (py, "-c") and "import torch, diffusers, latentbrush.backend.engine" in check.argv[2]
    assert state.argv[0] == "latentbrush:write-state" and '"tool": "pip"' in state.argv[1]
    assert p.torch is not None and "CUDA" in p.torch.label


def test_linux_amd_with_uv_from_the_bundled_wheel() -> None:
    p = plan("install", LINUX, "amd", UV, WHEEL)
    py = str(LINUX.python)
    rocm = ("--index-url", "https://download.pytorch.org/whl/rocm6.4")
    assert argvs(p)[1:4] == [
        ("/usr/bin/uv", "venv", "--seed", "--python", "3.11", str(LINUX.venv)),
        ("/usr/bin/uv", "pip", "install", "--python", py, *PINS, *rocm),
        ("/usr/bin/uv", "pip", "install", "--python", py, f"{WHEEL}[backend]", *PINS),
    ]
    assert f'"source": "{WHEEL}"' in p.steps[-1].argv[1]


def test_linux_without_a_gpu_gets_the_cpu_index() -> None:
    for tools in (UV, PIP):
        torch = titled(plan("install", LINUX, "none", tools), "PyTorch")
        assert torch.argv[-2:] == ("--index-url", "https://download.pytorch.org/whl/cpu")
        assert torch.weight == max(s.weight for s in plan("install", LINUX, "none", tools).steps)


def test_windows_nvidia_needs_pytorchs_cuda_index_and_scripts_python() -> None:
    p = plan("install", WINDOWS, "nvidia", WIN_PY, platform="win32")
    py = PureWindowsPath(str(WINDOWS.python))
    assert py.parts[-3:] == ("venv", "Scripts", "python.exe")
    venv, torch = p.steps[1], titled(p, "PyTorch")
    assert venv.argv == (r"C:\Windows\py.exe", "-3.12", "-m", "venv", str(WINDOWS.venv))
    assert PureWindowsPath(torch.argv[0]) == py and torch.argv[1:] == (
        "-m", "pip", "install", *PINS, "--index-url", "https://download.pytorch.org/whl/cu128")


def test_windows_intel_with_uv_gets_the_xpu_index() -> None:
    p = plan("install", WINDOWS, "intel", WIN_UV, platform="win32")
    torch = titled(p, "PyTorch")
    assert torch.argv[:4] == (WIN_UV.uv, "pip", "install", "--python")
    assert PureWindowsPath(torch.argv[4]).parts[-2:] == ("Scripts", "python.exe")
    assert torch.argv[5:] == (*PINS, "--index-url", "https://download.pytorch.org/whl/xpu")


def test_macos_arm64_gets_pypis_torch_with_mps() -> None:
    for tools in (UV, PIP):
        p = plan("install", MAC, "apple", tools, platform="darwin")
        torch = titled(p, "PyTorch")
        assert torch.argv[-2:] == PINS and "--index-url" not in torch.argv
        assert str(MAC.python).endswith("Library/Application Support/latentbrush/server/venv/bin/python")


def test_the_override_replaces_the_torch_requirement_everywhere() -> None:
    env = {"LATENTBRUSH_TORCH": "torch==2.13.0 --index-url https://mirror.example/torch"}
    p = plan("install", LINUX, "nvidia", PIP, env=env)
    assert titled(p, "PyTorch").argv[-3:] == ("torch==2.13.0", "--index-url", "https://mirror.example/torch")
    assert titled(p, "latentbrush server").argv[-2:] == ("latentbrush[backend]==0.1.0", "torch==2.13.0")


def test_no_python_and_no_uv_is_said_in_words() -> None:
    with pytest.raises(InstallError, match=r"Python 3\.10 or newer .* uv"):
        plan("install", LINUX, "none", NO_TOOLS)


def test_progress_goes_by_weight_and_torch_is_the_heavy_step() -> None:
    p = plan("install", LINUX, "nvidia", PIP)
    index = p.steps.index(titled(p, "PyTorch"))
    assert p.progress(0) == 0.0 and p.progress(len(p.steps)) == 1.0
    assert p.progress(index + 1) - p.progress(index) > 0.5
    assert all(p.progress(i) <= p.progress(i + 1) for i in range(len(p.steps)))


def test_update_reinstalls_the_package_but_not_an_unchanged_torch() -> None:
    before = plan("install", LINUX, "nvidia", PIP).torch
    assert before is not None
    p = plan("update", LINUX, "nvidia", PIP, WHEEL, state=installed_state(before))
    py = str(LINUX.python)
    assert not [s for s in p.steps if "PyTorch" in s.title]
    assert argvs(p)[:2] == [(py, "-m", "pip", "install", "--upgrade", f"{WHEEL}[backend]", *PINS),
                            (py, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(WHEEL))]
    assert p.steps[-1].argv[0] == "latentbrush:write-state" and not p.notes


def test_update_swaps_torch_when_the_choice_changed() -> None:
    cpu = TorchChoice("CPU only", PINS, "https://download.pytorch.org/whl/cpu")
    p = plan("update", LINUX, "nvidia", UV, state=installed_state(cpu))
    py = str(LINUX.python)
    assert argvs(p)[:3] == [("/usr/bin/uv", "pip", "uninstall", "--python", py, "torch", "torchvision"),
                            ("/usr/bin/uv", "pip", "install", "--python", py, *PINS),
                            ("/usr/bin/uv", "pip", "install", "--python", py, "--upgrade-package", "latentbrush",
                             "latentbrush[backend]==0.1.0", *PINS)]
    assert "CPU only" in p.notes[0] and "CUDA" in p.notes[0]


def test_update_before_install_says_to_install() -> None:
    with pytest.raises(InstallError, match="server install"):
        plan("update", LINUX, "nvidia", PIP)


def test_repair_of_a_working_venv_force_reinstalls_the_package() -> None:
    torch = TorchChoice("NVIDIA GPU (CUDA)", PINS, None)
    p = plan("repair", LINUX, "nvidia", PIP, WHEEL, state=installed_state(torch), venv_ok=True)
    py = str(LINUX.python)
    assert argvs(p)[0] == (py, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(WHEEL))
    assert [s.title for s in p.steps][-2:] == ["Checking that the server starts", "Recording what was installed"]
    assert not any(s.argv[0] == "latentbrush:remove-tree" for s in p.steps)
    uv = plan("repair", LINUX, "nvidia", UV, WHEEL, state=installed_state(torch), venv_ok=True)
    assert uv.steps[0].argv == ("/usr/bin/uv", "pip", "install", "--python", py, "--reinstall", "--no-deps",
                                str(WHEEL))


def test_repair_of_a_broken_venv_makes_it_anew() -> None:
    torch = TorchChoice("NVIDIA GPU (CUDA)", PINS, None)
    for state, ok in ((installed_state(torch), False), (None, True)):
        p = plan("repair", LINUX, "nvidia", PIP, state=state, venv_ok=ok)
        assert argvs(p)[:2] == [("latentbrush:remove-tree", str(LINUX.venv)),
                                ("/usr/bin/python3.12", "-m", "venv", str(LINUX.venv))]
        assert "installed anew" in p.notes[0] and "models folder stays" in p.notes[0]


def test_uninstall_keeps_the_models_unless_asked() -> None:
    p = plan("uninstall", LINUX, "nvidia", NO_TOOLS)  # needs no tools at all
    assert argvs(p) == [("latentbrush:remove-tree", str(LINUX.venv)),
                        ("latentbrush:remove-file", str(LINUX.state_file))]
    assert "kept" in p.notes[0] and "--models" in p.notes[0]
    p = plan("uninstall", LINUX, "nvidia", NO_TOOLS, remove_models=True)
    assert argvs(p)[-1] == ("latentbrush:remove-tree", str(LINUX.models_dir))
    assert "removed too" in p.notes[0]


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(InstallError, match="unknown action"):
        plan("reinstall", LINUX, "nvidia", PIP)


def test_the_bundled_wheel_is_the_newest_in_wheels(tmp_path: Path) -> None:
    assert bundled_wheel(tmp_path) is None
    (tmp_path / "wheels").mkdir()
    for name in ("latentbrush-0.1.0-py3-none-any.whl", "latentbrush-0.2.0-py3-none-any.whl", "other-9.whl"):
        (tmp_path / "wheels" / name).write_bytes(b"")
    assert bundled_wheel(tmp_path) == tmp_path / "wheels" / "latentbrush-0.2.0-py3-none-any.whl"


def test_repair_keeps_the_recorded_torch_even_when_the_machine_changed() -> None:
    cpu = TorchChoice("CPU only", ("torch==2.13.0",), "https://download.pytorch.org/whl/cpu")
    p = plan("repair", LINUX, "nvidia", PIP, state=installed_state(cpu), venv_ok=True)
    assert p.torch == cpu and titled(p, "libraries").argv[-1] == "torch==2.13.0"
    assert '"torch_label": "CPU only"' in p.steps[-1].argv[1]


def test_update_and_repair_of_a_working_venv_need_no_system_python() -> None:
    torch = TorchChoice("NVIDIA GPU (CUDA)", PINS, None)
    for action in ("update", "repair"):
        p = plan(action, LINUX, "nvidia", NO_TOOLS, state=installed_state(torch), venv_ok=True)
        assert all(s.argv[0] in (str(LINUX.python), "latentbrush:write-state") for s in p.steps)
    with pytest.raises(InstallError, match=r"no Python 3\.10"):
        plan("repair", LINUX, "nvidia", NO_TOOLS, state=installed_state(torch), venv_ok=False)
