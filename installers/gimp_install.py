#!/usr/bin/env python3
"""Install the latentbrush GIMP 3 plug-in into the plug-in folders of GIMP 3.0 and 3.2.

Layout written into ``<config>/<version>/plug-ins/``::

    latentbrush/latentbrush.py           the entry file GIMP runs (executable: GIMP silently
                                          ignores a plug-in that is not)
    latentbrush/lib/latentbrush/plugin/   latentbrush.plugin (plugin/), with vendor/websockets
    latentbrush/lib/latentbrush/protocol/ latentbrush.protocol (protocol/)

GIMP only reads the folder of its own minor version (3.2 does not look in 3.0), and the folder
name must equal the entry file's name without ".py". ``<config>`` is ~/.config/GIMP on Linux
($XDG_CONFIG_HOME/GIMP when set), ~/Library/Application Support/GIMP on macOS and
%APPDATA%\\GIMP on Windows.

Usage::

    python installers/gimp_install.py                       # this user, GIMP 3.0 and 3.2
    python installers/gimp_install.py --version 3.2         # one version
    python installers/gimp_install.py --config-dir DIR      # a test profile (DIR/3.0/plug-ins/...)
    python installers/gimp_install.py --uninstall

Standard library only; Python >= 3.10.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import sys
from pathlib import Path

from install_common import ROOT, InstallError, copy_tree, user_folder, vendor_websockets

PLUGIN_NAME = "latentbrush"
GIMP_VERSIONS = ("3.0", "3.2")
ENTRY = ROOT / "plugin" / "hosts" / "gimp" / "gimp_entry.py"
SKIP_PLUGIN_PARTS = ("hosts/krita", "qt.py")  # Qt code has no place in GIMP's Python
# GIMP 3 runs plug-ins with the system's or its bundle's Python: 3.12 in the Windows/macOS/Flatpak
# builds, 3.13 in Debian trixie, 3.14 in sid. So websockets 17 (Python >= 3.11) may be vendored.
GIMP_MIN_PYTHON = "3.11"


def default_config_dir(platform: str = sys.platform, env: dict[str, str] | None = None) -> Path:
    """GIMP 3's per-user configuration root (the folder holding ``3.0/`` and ``3.2/``)."""
    return user_folder("GIMP", platform, env, windows_var="APPDATA", windows_default=("AppData", "Roaming"),
                       mac=("Library", "Application Support"), xdg_var="XDG_CONFIG_HOME", xdg_default=(".config",))


def plugin_dir(config_dir: Path, version: str) -> Path:
    """``<config>/<version>/plug-ins/latentbrush``: where one GIMP version looks for this plug-in."""
    if version not in GIMP_VERSIONS:
        raise InstallError(f"--version: GIMP {version} is not supported (choose from {', '.join(GIMP_VERSIONS)})")
    return config_dir / version / "plug-ins" / PLUGIN_NAME


def build_plugin_folder(
    dest: Path, *, vendor: bool = True, wheel: Path | None = None, min_python: str = GIMP_MIN_PYTHON
) -> Path:
    """Write the complete plug-in folder into ``dest`` (must not exist yet); returns ``dest``."""
    dest.mkdir(parents=True)
    lib = dest / "lib" / PLUGIN_NAME
    copy_tree(ROOT / "plugin", lib / "plugin", SKIP_PLUGIN_PARTS)
    copy_tree(ROOT / "protocol", lib / "protocol")
    if vendor:
        vendor_websockets(lib / "plugin" / "vendor", wheel, min_python)
    entry = dest / f"{PLUGIN_NAME}.py"
    shutil.copy2(ENTRY, entry)
    entry.chmod(entry.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def install(
    config_dir: Path,
    versions: tuple[str, ...] = GIMP_VERSIONS,
    *,
    vendor: bool = True,
    wheel: Path | None = None,
    min_python: str = GIMP_MIN_PYTHON,
) -> list[Path]:
    """Install (replacing any earlier copy) for each GIMP version; returns the plug-in folders."""
    written = []
    for version in versions:
        target = plugin_dir(config_dir, version)
        staging = target.with_name(f".{PLUGIN_NAME}.installing")
        if staging.exists():
            shutil.rmtree(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        build_plugin_folder(staging, vendor=vendor, wheel=wheel, min_python=min_python)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # GIMP never sees half a plug-in
        written.append(target)
    return written


def uninstall(config_dir: Path, versions: tuple[str, ...] = GIMP_VERSIONS) -> list[Path]:
    removed = []
    for version in versions:
        target = plugin_dir(config_dir, version)
        if target.exists():
            shutil.rmtree(target)
            removed.append(target)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="GIMP configuration root holding 3.0/ and 3.2/ (default: this user's)")
    parser.add_argument("--version", dest="versions", action="append", choices=GIMP_VERSIONS,
                        help="GIMP version to install for (repeatable; default: all)")
    parser.add_argument("--no-vendor", action="store_true", help="leave websockets out (GIMP's Python has it)")
    parser.add_argument("--wheel", type=Path, help="vendor websockets from this wheel (default: the installed copy)")
    parser.add_argument("--min-python", default=GIMP_MIN_PYTHON,
                        help=f"oldest Python the vendored websockets must support (default {GIMP_MIN_PYTHON})")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in instead")
    args = parser.parse_args(argv)
    config_dir = args.config_dir or default_config_dir()
    versions = tuple(args.versions or GIMP_VERSIONS)
    try:
        if args.uninstall:
            done = uninstall(config_dir, versions)
            print("removed:" if done else "nothing to remove", *done, sep="\n  ")
        else:
            for path in install(config_dir, versions, vendor=not args.no_vendor, wheel=args.wheel,
                                min_python=args.min_python):
                print(f"installed {path / (PLUGIN_NAME + '.py')}")
            print("Restart GIMP; the commands are under Filters > latentbrush.")
    except (InstallError, OSError) as exc:
        print(f"gimp_install: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
