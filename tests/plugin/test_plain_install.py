"""``pip install latentbrush`` without extras gives a working ``latentbrush`` client command.

The project is built into a wheel from a copy of the sources (nothing is written into the checkout)
and installed with ``--no-deps --no-index`` into a fresh venv that does not see this one's packages.
Its base dependencies (and theirs), read from the wheel's own metadata, are copied in from the
distributions installed here, so the check needs no network and proves the base list is enough.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers.live_server import FAKE_ENGINE, live_server
from helpers.wheel import build_wheel
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT_S, **kw)


def base_requirements(wheel: Path) -> list[Requirement]:
    """Requires-Dist of the wheel that apply without any extra."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    env = {**default_environment(), "extra": ""}
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or ()]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def copy_distributions(reqs: list[Requirement], site: Path) -> list[str]:
    """Copy each required distribution installed here (files from its RECORD), recursively; returns the names."""
    env = {**default_environment(), "extra": ""}
    done: list[str] = []
    todo = list(reqs)
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in done:
            continue
        dist = importlib.metadata.distribution(req.name)
        assert req.specifier.contains(dist.version, prereleases=True), f"{req} but {dist.version} is installed"
        for file in dist.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # scripts and byte code
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dist.locate_file(file), target)
        done.append(key)
        for text in dist.requires or ():
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate(env):
                todo.append(sub)
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_module(wheel: Path) -> None:
    """A source folder without ``__init__.py`` works in the checkout (a namespace package) but is left out of
    the wheel by find_packages, and an installed server then fails at start-up: every module must be in it."""
    scripts = ("backend/configs/", "protocol/vectors/")  # generator scripts, run by path from a checkout
    modules = {f"latentbrush/{path.relative_to(REPO).as_posix()}"
               for folder in ("protocol", "plugin", "backend") for path in (REPO / folder).rglob("*.py")
               if "__pycache__" not in path.parts and "vendor" not in path.parts
               and not path.relative_to(REPO).as_posix().startswith(scripts)}
    with zipfile.ZipFile(wheel) as archive:
        missing = modules - set(archive.namelist())
    assert not missing, sorted(missing)


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    tmp = tmp_path_factory.mktemp("plain-install")
    venv = tmp / "venv"
    done = run(sys.executable, "-m", "venv", "--without-pip", venv)  # no --system-site-packages
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    done = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
               "--disable-pip-version-check", wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    copy_distributions(base_requirements(wheel), Path(purelib))
    return venv


def cli(venv: Path, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(cwd or venv)  # no token file of this machine's user is found by accident
    return run(venv / "bin" / "latentbrush", *args, cwd=cwd, env=env)


def test_the_venv_sees_only_the_base_install(plain_venv: Path) -> None:
    probe = "import importlib.util as u; print(*(m for m in ('torch', 'diffusers', 'pytest') if u.find_spec(m)))"
    done = run(plain_venv / "bin" / "python", "-c", probe)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
    assert sysconfig.get_paths()["purelib"] not in run(plain_venv / "bin" / "python", "-c",
                                                      "import sys; print(sys.path)").stdout


def test_help_works(plain_venv: Path) -> None:
    done = cli(plain_venv, "--help")
    assert done.returncode == 0, done.stderr
    assert "inpaint" in done.stdout and "upscale" in done.stdout
    done = cli(plain_venv, "inpaint", "--help")
    assert done.returncode == 0 and "--rect" in done.stdout, done.stderr


def test_a_job_against_a_running_server(plain_venv: Path, tmp_path: Path) -> None:
    Image.new("RGB", (48, 32), (200, 120, 40)).save(tmp_path / "in.png")
    with live_server(tmp_path, engine_factory=FAKE_ENGINE) as server:
        done = cli(plain_venv, "inpaint", "in.png", "--rect", "8,8,16,16", "-p", "a cat", "--steps", "2",
                   "--url", server.url, "--token", server.token, "-o", "out.png", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert Image.open(tmp_path / "out.png").size == (48, 32)
    assert Image.open(tmp_path / "out.layer.png").mode == "RGBA"


def test_no_server_is_a_clear_error_not_a_crash(plain_venv: Path, tmp_path: Path) -> None:
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    done = cli(plain_venv, "img2img", "in.png", "--url", "ws://127.0.0.1:9", "--token", "x", cwd=tmp_path)
    assert done.returncode == 3 and "cannot connect" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_local_without_the_backend_says_what_to_install(plain_venv: Path, tmp_path: Path) -> None:
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    done = cli(plain_venv, "img2img", "in.png", "--local", cwd=tmp_path)
    assert done.returncode == 3 and "latentbrush[backend]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
