"""Turn install / update / repair / uninstall into Steps: argv lists a runner executes one after another.

Planning is pure (``find_tools`` and ``venv_works`` are the only functions that look at the system); a
step whose argv starts with ``latentbrush:`` is done in-process by ``run_internal`` (write the state
file, remove a folder), so no shell is ever involved. uv is used when it is on PATH (it also brings a
Python 3.11), else a system Python >= 3.10 with venv and pip.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from .errors import InstallError, InstallFailed
from .layout import InstallLayout
from .machine import Machine, TorchChoice, torch_choice
from .state import BUILD_FILE, InstallState, read_state, state_from_json
from .version import package_version

__all__ = ["InstallError", "InstallFailed", "InstallPlan", "Step", "Tools", "bundled_wheel", "find_tools",
           "make_plan", "run_internal", "venv_works"]

Action = Literal["install", "update", "repair", "uninstall"]
ACTIONS = ("install", "update", "repair", "uninstall")
INTERNAL = "latentbrush:"
UV_PYTHON = "3.11"  # the version uv creates the venv with (it downloads it when the system has none)
MIN_PYTHON = (3, 10)
# newest first among the versions every pinned dependency has wheels for; plain python3 / python last
PYTHON_NAMES = ("python3.12", "python3.11", "python3.13", "python3.10", "python3", "python")
PIP_ENV = (("PIP_DISABLE_PIP_VERSION_CHECK", "1"), ("PIP_NO_INPUT", "1"), ("PYTHONUNBUFFERED", "1"))
# imports what the server needs and says which torch build it got; sys.argv[1] receives it as JSON
CHECK_CODE = "; ".join((
    "import json, sys, importlib.metadata as md",
    "import torch, diffusers, latentbrush.backend.engine",
    "v = torch.version",
    "kind = ('CUDA ' + v.cuda) if v.cuda else ('ROCm ' + v.hip) if getattr(v, 'hip', None) "
    "else 'XPU' if getattr(v, 'xpu', None) else 'MPS' if sys.platform == 'darwin' else 'CPU'",
    "xpu = getattr(torch, 'xpu', None)",
    "found = torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())",
    "where = 'GPU found' if found else 'no GPU found: runs on the CPU'",
    "build = torch.__version__ + ' (' + kind + ', ' + where + ')'",
    "print('latentbrush', md.version('latentbrush'), '| torch', build, '| diffusers', diffusers.__version__)",
    "f = open(sys.argv[1], 'w', encoding='utf-8'); json.dump({'torch_build': build}, f); f.close()",
))


@dataclass(frozen=True)
class Step:
    title: str  # plain words for the user: "Installing PyTorch (the big download)"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # added to the inherited environment
    weight: float = 1.0  # share of the progress bar

    @property
    def internal(self) -> bool:
        return bool(self.argv) and self.argv[0].startswith(INTERNAL)


@dataclass(frozen=True)
class InstallPlan:
    action: str
    steps: tuple[Step, ...]
    torch: TorchChoice | None
    layout: InstallLayout
    notes: tuple[str, ...] = ()  # what the user should know before or after (kept models, torch change)

    def progress(self, done: int) -> float:
        """The fraction (0..1) of the work behind the first ``done`` steps, by weight."""
        total = sum(s.weight for s in self.steps)
        return 1.0 if total <= 0 else min(1.0, sum(s.weight for s in self.steps[:done]) / total)


@dataclass(frozen=True)
class Tools:
    uv: str | None  # the uv program, or None
    python: tuple[str, ...] | None  # argv prefix of a system Python >= 3.10 ("py", "-3.12" on Windows)
    python_version: str = ""  # "3.11" for the plan's notes

    @property
    def name(self) -> str:
        return "uv" if self.uv else "pip"


class ReadState(enum.Enum):
    """``make_plan``'s default for ``state``: read the layout's state file."""

    READ = "read"


# ----------------------------------------------------------------------------- the system


def _python_version(argv: tuple[str, ...]) -> tuple[int, int] | None:
    try:
        done = subprocess.run([*argv, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
        major, minor = done.stdout.split()
        return (int(major), int(minor)) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _uv_search_path(env: Mapping[str, str]) -> str:
    """PATH plus where uv's own installer puts it: painting apps started from a menu often lack ~/.local/bin."""
    home = env.get("USERPROFILE") or env.get("HOME") or os.path.expanduser("~")
    extra = [os.path.join(home, ".local", "bin"), os.path.join(home, ".cargo", "bin")]
    return os.pathsep.join([env.get("PATH", ""), *extra])


def find_tools(env: Mapping[str, str] = os.environ, which: Callable[..., str | None] = shutil.which,
               probe: Callable[[tuple[str, ...]], tuple[int, int] | None] = _python_version,
               platform: str = sys.platform) -> Tools:
    """uv when it can be found, else the first system Python >= 3.10 that answers (``probe`` runs it)."""
    uv = which("uv", path=_uv_search_path(env))
    if uv:
        return Tools(uv, None, UV_PYTHON)
    path = env.get("PATH")
    candidates: list[tuple[str, ...]] = []
    if platform == "win32":
        launcher = which("py", path=path)
        candidates += [(launcher, f"-{v}") for v in ("3.12", "3.11", "3.13", "3.10")] if launcher else []
    candidates += [(found,) for found in (which(name, path=path) for name in PYTHON_NAMES) if found]
    if Path(sys.executable).name.lower().startswith("python"):  # not when it is krita.exe / gimp
        candidates.append((sys.executable,))
    for argv in candidates:
        version = probe(argv)
        if version is not None and version >= MIN_PYTHON:
            return Tools(None, argv, f"{version[0]}.{version[1]}")
    return Tools(None, None)


def bundled_wheel(package_dir: Path) -> Path | None:
    """The newest ``<latentbrush package>/wheels/latentbrush-*.whl`` a release bundle carries, or None."""
    wheels = sorted((package_dir / "wheels").glob("latentbrush-*.whl"))
    return wheels[-1] if wheels else None


def venv_works(layout: InstallLayout) -> bool:
    """The venv's python exists and starts (a moved or half-deleted venv does not)."""
    if not layout.python.is_file():
        return False
    try:
        return subprocess.run([str(layout.python), "-c", "import sys"],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# ----------------------------------------------------------------------------- steps


def _pip(tools: Tools, layout: InstallLayout, command: str, *args: str) -> tuple[str, ...]:
    """``pip <command>`` for the venv: through uv when there is one, else the venv's own pip."""
    if tools.uv:
        return (tools.uv, "pip", command, "--python", str(layout.python), *args)
    return (str(layout.python), "-m", "pip", command, *(("-y",) if command == "uninstall" else ()), *args)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", requirement, maxsplit=1)[0]


def _venv_steps(layout: InstallLayout, tools: Tools) -> list[Step]:
    remove = Step("Removing the old Python environment", (f"{INTERNAL}remove-tree", str(layout.venv)), weight=0.5)
    if tools.uv:
        return [remove, Step(f"Creating the Python {UV_PYTHON} environment",
                             (tools.uv, "venv", "--seed", "--python", UV_PYTHON, str(layout.venv)), weight=1.0)]
    if tools.python is None:
        raise InstallError("no Python 3.10 or newer was found, and no uv: install Python 3.11 or 3.12 from "
                           "python.org (or uv from docs.astral.sh/uv), then try again")
    return [remove,
            Step(f"Creating the Python {tools.python_version} environment" if tools.python_version
                 else "Creating the Python environment",
                 (*tools.python, "-m", "venv", str(layout.venv)), PIP_ENV, weight=1.0),
            Step("Updating pip", (str(layout.python), "-m", "pip", "install", "--upgrade", "pip"), PIP_ENV, 0.5)]


def _torch_step(layout: InstallLayout, tools: Tools, torch: TorchChoice) -> Step:
    return Step(f"Installing PyTorch ({torch.label}), the big download",
                _pip(tools, layout, "install", *torch.install_args()), PIP_ENV, weight=10.0)


def _package_spec(wheel: Path | None, version: str, extra: bool = True) -> str:
    if wheel is not None:
        return f"{wheel}[backend]" if extra else str(wheel)
    return f"latentbrush[backend]=={version}" if extra else f"latentbrush=={version}"


def _package_step(layout: InstallLayout, tools: Tools, torch: TorchChoice, wheel: Path | None, version: str,
                  *, upgrade: bool = False) -> Step:
    # torch's pins ride along so that resolving the backend's "torch>=2.1" never swaps the build just installed
    upgrade_args = (("--upgrade-package", "latentbrush") if tools.uv else ("--upgrade",)) if upgrade else ()
    return Step("Installing the latentbrush server and its libraries",
                _pip(tools, layout, "install", *upgrade_args, _package_spec(wheel, version), *torch.requirements),
                PIP_ENV, weight=4.0)


def _reinstall_step(layout: InstallLayout, tools: Tools, wheel: Path | None, version: str) -> Step:
    force = "--reinstall" if tools.uv else "--force-reinstall"
    return Step("Reinstalling the latentbrush package",
                _pip(tools, layout, "install", force, "--no-deps", _package_spec(wheel, version, extra=False)),
                PIP_ENV, weight=1.0)


def _finish_steps(layout: InstallLayout, tools: Tools, torch: TorchChoice, wheel: Path | None,
                  version: str) -> list[Step]:
    state = InstallState(version=version, torch_label=torch.label, torch_requirements=torch.requirements,
                         torch_index_url=torch.index_url, source=str(wheel or ""), tool=tools.name)
    check = Step("Checking that the server starts", (str(layout.python), "-c", CHECK_CODE,
                                                     str(layout.root / BUILD_FILE)), (("PYTHONUNBUFFERED", "1"),), 1.0)
    return [check, Step("Recording what was installed", (f"{INTERNAL}write-state", state.to_json()), weight=0.1)]


def _install_steps(layout: InstallLayout, tools: Tools, torch: TorchChoice, wheel: Path | None,
                   version: str) -> list[Step]:
    return [*_venv_steps(layout, tools), _torch_step(layout, tools, torch),
            _package_step(layout, tools, torch, wheel, version), *_finish_steps(layout, tools, torch, wheel, version)]


def _same_torch(a: TorchChoice, b: TorchChoice) -> bool:
    return a.requirements == b.requirements and a.index_url == b.index_url


def make_plan(action: str, layout: InstallLayout, machine: Machine, tools: Tools, wheel: Path | None = None, *,
              env: Mapping[str, str] = os.environ, state: InstallState | ReadState | None = ReadState.READ,
              venv_ok: bool | None = None, version: str | None = None, remove_models: bool = False) -> InstallPlan:
    """The steps of ``action`` for this machine; raises InstallError (plain words) when it cannot be done.

    ``state`` defaults to the layout's state file; ``venv_ok`` (repair only) defaults to ``venv_works``;
    ``version`` is the latentbrush version to get from the package index when there is no ``wheel``;
    ``remove_models`` (uninstall only) also deletes the models folder.
    """
    if action not in ACTIONS:
        raise InstallError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "uninstall":
        return _uninstall_plan(layout, remove_models)
    version = version or package_version()
    torch = torch_choice(machine, env)
    recorded = read_state(layout.state_file) if isinstance(state, ReadState) else state
    if action == "install":
        return InstallPlan(action, tuple(_install_steps(layout, tools, torch, wheel, version)), torch, layout)
    if action == "repair":
        ok = venv_works(layout) if venv_ok is None else venv_ok
        if recorded is None or not ok:
            why = "its Python environment does not start" if not ok else "no finished install is recorded"
            return InstallPlan(action, tuple(_install_steps(layout, tools, torch, wheel, version)), torch, layout,
                               (f"The server's {why}: it is installed anew (the models folder stays).",))
        torch = recorded.torch  # repair puts back what was there; a new torch choice is update's business
        steps = [_reinstall_step(layout, tools, wheel, version), _package_step(layout, tools, torch, wheel, version),
                 *_finish_steps(layout, tools, torch, wheel, version)]
        return InstallPlan(action, tuple(steps), torch, layout)
    if recorded is None:  # update
        raise InstallError("the server is not installed yet: run `latentbrush server install` first")
    notes: tuple[str, ...] = ()
    steps = []
    if not _same_torch(recorded.torch, torch):
        names = [_requirement_name(r) for r in recorded.torch_requirements]
        steps += [Step("Removing the old PyTorch build", _pip(tools, layout, "uninstall", *names), PIP_ENV, 1.0),
                  _torch_step(layout, tools, torch)]
        notes = (f"PyTorch changes from {recorded.torch_label} to {torch.label}.",)
    steps += [_package_step(layout, tools, torch, wheel, version, upgrade=True),
              _reinstall_step(layout, tools, wheel, version), *_finish_steps(layout, tools, torch, wheel, version)]
    return InstallPlan(action, tuple(steps), torch, layout, notes)


def _uninstall_plan(layout: InstallLayout, remove_models: bool) -> InstallPlan:
    steps = [Step("Removing the Python environment", (f"{INTERNAL}remove-tree", str(layout.venv)), weight=1.0),
             Step("Removing the install record", (f"{INTERNAL}remove-file", str(layout.state_file)), weight=0.1)]
    if remove_models:
        steps.append(Step("Removing the models folder", (f"{INTERNAL}remove-tree", str(layout.models_dir)), weight=1.0))
        notes = (f"The models folder {layout.models_dir} is removed too.",)
    else:
        notes = (f"The models folder {layout.models_dir} is kept (your models stay); "
                 "`latentbrush server uninstall --models` removes it too.",)
    return InstallPlan("uninstall", tuple(steps), None, layout, notes)


# ----------------------------------------------------------------------------- in-process steps


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()  # resolve: no way out through ".." or a link
    return path == root or root in path.parents


def _make_writable(func: Callable[..., object], path: str, _exc: object) -> None:
    """rmtree's error hook: Windows refuses to delete read-only files (pip marks some so)."""
    os.chmod(path, stat.S_IWRITE)
    func(path)


def _write_state(text: str, layout: InstallLayout) -> None:
    state = state_from_json(text)
    build_file = layout.root / BUILD_FILE
    try:
        build = json.loads(build_file.read_text(encoding="utf-8")).get("torch_build", "")
        build_file.unlink()
    except (OSError, ValueError, AttributeError):
        build = ""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    state = replace(state, installed_at=now, torch_build=str(build or state.torch_build))
    layout.models_dir.mkdir(parents=True, exist_ok=True)
    partial = layout.state_file.with_suffix(".json.partial")
    partial.write_text(state.to_json() + "\n", encoding="utf-8")
    partial.replace(layout.state_file)  # atomic: a half-written state file would mean "installed"


def run_internal(step: Step, layout: InstallLayout) -> None:
    """Do an in-process step (``latentbrush:write-state``, ``remove-tree``, ``remove-file``).

    Removal is limited to paths inside the layout's root, whatever the step says. Raises InstallFailed.
    """
    action, *args = step.argv
    try:
        if action == f"{INTERNAL}write-state" and len(args) == 1:
            _write_state(args[0], layout)
            return
        if action in (f"{INTERNAL}remove-tree", f"{INTERNAL}remove-file") and len(args) == 1:
            target = Path(args[0])
            if not _inside(target, layout.root):
                raise InstallFailed(f"refusing to remove {target}: it is outside {layout.root}")
            if action.endswith("tree") and target.is_dir() and not target.is_symlink():
                if sys.version_info >= (3, 12):
                    shutil.rmtree(target, onexc=_make_writable)
                else:
                    shutil.rmtree(target, onerror=_make_writable)
            elif target.exists() or target.is_symlink():
                target.unlink()
            return
    except OSError as exc:
        raise InstallFailed(f"{step.title} failed: {exc.strerror or exc} ({exc.filename or ''})".rstrip(" ()"))
    raise InstallFailed(f"unknown in-process step {step.argv[0]!r}")
