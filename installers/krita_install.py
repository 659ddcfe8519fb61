#!/usr/bin/env python3
"""Build the latentbrush Krita plugin bundle, as a zip and/or installed into a Krita profile.

Bundle layout (what Krita's "Tools > Scripts > Import Python Plugin from File" expects)::

    latentbrush.desktop            the pykrita plugin description (X-KDE-Library=latentbrush)
    latentbrush.action             default shortcuts; Krita's importer copies it to actions/
    latentbrush/__init__.py        registers the docker and actions
    latentbrush/plugin/            latentbrush.plugin (plugin/), with vendor/websockets
    latentbrush/protocol/          latentbrush.protocol (protocol/)
    latentbrush/wheels/            with --with-server-wheel: latentbrush-<ver>-py3-none-any.whl, what the docker's
                                   "Install local server" installs (no package index needed for latentbrush itself)

Usage::

    python installers/krita_install.py --zip dist/latentbrush-krita.zip    # for the importer
    python installers/krita_install.py --zip dist/latentbrush-krita.zip --with-server-wheel --no-install
    python installers/krita_install.py                                     # install for this user
    python installers/krita_install.py --profile DIR --kritarc FILE        # a test profile

Installing copies the bundle into ``<resources>/pykrita`` (Linux ~/.local/share/krita,
macOS ~/Library/Application Support/krita, Windows %APPDATA%\\krita) and turns it on in kritarc
(``[python] enable_latentbrush=true``). Standard library only; runs on Python >= 3.10.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

from install_common import ROOT, InstallError, copy_tree, user_folder, vendor_websockets

TEMPLATES = Path(__file__).resolve().parent / "krita"
PLUGIN_NAME = "latentbrush"
SKIP_PLUGIN_PARTS = ("hosts/gimp",)  # other hosts' adapters do not belong in the Krita bundle
WHEEL_SOURCES = ("protocol", "plugin", "backend", "setup.py", "pyproject.toml", "README.md", "LICENSE")
WHEELS_DIR = "wheels"  # <package>/wheels: where core/install/plan.py's bundled_wheel() looks


# ----------------------------------------------------------------------------- locations


def default_resources_dir(platform: str = sys.platform, env: dict[str, str] | None = None) -> Path:
    """Krita's per-user resource folder (it holds pykrita/ and actions/)."""
    return user_folder("krita", platform, env, windows_var="APPDATA", windows_default=("AppData", "Roaming"),
                       mac=("Library", "Application Support"), xdg_var="XDG_DATA_HOME",
                       xdg_default=(".local", "share"))


def default_kritarc(platform: str = sys.platform, env: dict[str, str] | None = None) -> Path:
    """Where Krita keeps its settings file (QStandardPaths::GenericConfigLocation)."""
    return user_folder("kritarc", platform, env, windows_var="LOCALAPPDATA", windows_default=("AppData", "Local"),
                       mac=("Library", "Preferences"), xdg_var="XDG_CONFIG_HOME", xdg_default=(".config",))


# ----------------------------------------------------------------------------- kritarc


def enable_in_kritarc(text: str, name: str = PLUGIN_NAME) -> str:
    """``text`` with ``[python] enable_<name>=true`` set; everything else kept line for line.

    A line editor rather than configparser: kritarc is a QSettings file whose keys and values
    configparser would lowercase, interpolate or reject.
    """
    key = f"enable_{name}"
    lines = text.splitlines()
    section_start = next((i for i, line in enumerate(lines) if line.strip() == "[python]"), None)
    if section_start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += ["[python]", f"{key}=true"]
        return "\n".join(lines) + "\n"
    end = next((i for i in range(section_start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines))
    for i in range(section_start + 1, end):
        if lines[i].split("=", 1)[0].strip() == key:
            lines[i] = f"{key}=true"
            return "\n".join(lines) + "\n"
    lines.insert(section_start + 1, f"{key}=true")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- bundle


def _load_actions() -> ModuleType:
    """plugin/hosts/krita/actions.py by path: plain Python, so no Qt (nor an installed package) is needed."""
    path = ROOT / "plugin" / "hosts" / "krita" / "actions.py"
    spec = importlib.util.spec_from_file_location("latentbrush_krita_actions", path)
    if spec is None or spec.loader is None:
        raise InstallError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_server_wheel(out_dir: Path) -> Path:
    """``pip wheel`` of this checkout (from a copy: nothing is written into the sources); returns the wheel."""
    with tempfile.TemporaryDirectory(prefix="latentbrush-wheel-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "vendor", "*.egg-info")
        for name in WHEEL_SOURCES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=ignore)
            else:
                shutil.copy2(path, src / name)
        out_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--no-index", "--disable-pip-version-check", "-w", str(out_dir), str(src)],
                              capture_output=True, text=True)
    wheels = sorted(out_dir.glob("latentbrush-*-py3-none-any.whl"))
    if done.returncode != 0 or not wheels:
        raise InstallError(f"building the latentbrush wheel failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wheels[-1]


def build_bundle(dest: Path, *, vendor: bool = True, wheel: Path | None = None, min_python: str | None = None,
                 server_wheel: Path | None = None) -> Path:
    """Write the bundle files into ``dest`` (created; must not exist yet); returns ``dest``.

    ``wheel`` is a websockets wheel to vendor; ``server_wheel`` a latentbrush wheel the bundle carries for
    the docker's "Install local server"."""
    dest.mkdir(parents=True)
    package = dest / PLUGIN_NAME
    copy_tree(ROOT / "plugin", package / "plugin", SKIP_PLUGIN_PARTS)
    copy_tree(ROOT / "protocol", package / "protocol")
    shutil.copy2(TEMPLATES / "__init__.py", package / "__init__.py")
    shutil.copy2(TEMPLATES / f"{PLUGIN_NAME}.desktop", dest / f"{PLUGIN_NAME}.desktop")
    (dest / f"{PLUGIN_NAME}.action").write_text(_load_actions().action_file_xml(), encoding="utf-8")
    if vendor:
        vendor_websockets(package / "plugin" / "vendor", wheel, min_python)
    if server_wheel is not None:
        if not server_wheel.name.startswith("latentbrush-") or not server_wheel.name.endswith("-py3-none-any.whl"):
            raise InstallError(f"{server_wheel} is not a latentbrush wheel (latentbrush-<version>-py3-none-any.whl)")
        (package / WHEELS_DIR).mkdir()
        shutil.copy2(server_wheel, package / WHEELS_DIR / server_wheel.name)
    return dest


def write_zip(bundle: Path, zip_path: Path) -> Path:
    """Zip the bundle with explicit folder entries: Krita's importer finds the package by its "latentbrush/" entry."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(bundle.rglob("*")):
            zf.write(path, path.relative_to(bundle).as_posix() + ("/" if path.is_dir() else ""))
    return zip_path


def install(bundle: Path, resources: Path, kritarc: Path | None) -> list[Path]:
    """Copy the bundle into a Krita resource folder and enable it; returns what was written."""
    pykrita = resources / "pykrita"
    actions_dir = resources / "actions"
    pykrita.mkdir(parents=True, exist_ok=True)
    actions_dir.mkdir(parents=True, exist_ok=True)
    target = pykrita / PLUGIN_NAME
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle / PLUGIN_NAME, target)
    written = [target]
    for src, dst in (
        (bundle / f"{PLUGIN_NAME}.desktop", pykrita / f"{PLUGIN_NAME}.desktop"),
        (bundle / f"{PLUGIN_NAME}.action", actions_dir / f"{PLUGIN_NAME}.action"),
    ):
        shutil.copy2(src, dst)
        written.append(dst)
    if kritarc is not None:
        kritarc.parent.mkdir(parents=True, exist_ok=True)
        old = kritarc.read_text(encoding="utf-8") if kritarc.exists() else ""
        kritarc.write_text(enable_in_kritarc(old), encoding="utf-8")
        written.append(kritarc)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, help="write the bundle zip here (for Import Python Plugin from File)")
    parser.add_argument("--profile", type=Path, help="Krita resource folder to install into (default: this user's)")
    parser.add_argument("--kritarc", type=Path, help="kritarc to enable the plugin in (default: this user's; "
                        "with --profile only when given)")
    parser.add_argument("--no-install", action="store_true", help="only build the zip")
    parser.add_argument("--no-vendor", action="store_true", help="leave websockets out (Krita's Python has it)")
    parser.add_argument("--websockets-wheel", type=Path, help="vendor websockets from this wheel")
    parser.add_argument("--min-python", help="oldest Python the bundle must run on (default: vendor_websockets.py's)")
    wheel_group = parser.add_mutually_exclusive_group()
    wheel_group.add_argument("--with-server-wheel", action="store_true",
                             help="build the latentbrush wheel from this checkout and bundle it (for the docker's "
                                  "Install local server)")
    wheel_group.add_argument("--server-wheel", type=Path, help="bundle this latentbrush wheel")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="latentbrush-bundle-") as tmp:
            server_wheel = args.server_wheel
            if args.with_server_wheel:
                server_wheel = build_server_wheel(Path(tmp) / "dist")
                print(f"server wheel: {server_wheel.name}")
            bundle = build_bundle(Path(tmp) / "bundle", vendor=not args.no_vendor, wheel=args.websockets_wheel,
                                  min_python=args.min_python, server_wheel=server_wheel)
            if args.zip:
                print(f"bundle zip: {write_zip(bundle, args.zip)}")
            if not args.no_install:
                resources = args.profile or default_resources_dir()
                kritarc = args.kritarc or (None if args.profile else default_kritarc())
                install(bundle, resources, kritarc)
                print(f"installed into {resources / 'pykrita' / PLUGIN_NAME}")
                if kritarc is None:
                    print("kritarc not changed (--profile without --kritarc): enable latentbrush in "
                          "Settings > Configure Krita > Python Plugin Manager")
                else:
                    print(f"enabled in {kritarc}; restart Krita, then Settings > Dockers > latentbrush")
    except (InstallError, OSError) as exc:
        print(f"krita_install: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
