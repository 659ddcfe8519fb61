#!/usr/bin/env python3
"""Copy the pure-Python ``websockets`` package into a plugin bundle's vendor folder.

Painting apps run their own Python, where ``pip install`` is not an option, so the plugin ships
``websockets`` next to itself: ``<bundle>/latentbrush/plugin/vendor/websockets``
(``latentbrush/plugin/deps.py`` puts that folder on ``sys.path``). The source is a wheel
(``--wheel``) or the copy installed in this Python. Compiled speedups (``*.so``, ``*.pyd``) are
left out: they are built for one Python version, and websockets falls back to pure Python.

The copy must run on the oldest Python the plugin supports (3.10, ``--min-python``), so the
wheel's ``Requires-Python`` is checked: websockets 13-15 support 3.9+, 16 needs 3.10+, 17 needs
3.11+. To get a suitable wheel::

    pip download "websockets>=13,<16" --no-deps --only-binary=:all: -d wheels/
    python installers/vendor_websockets.py --wheel wheels/websockets-*.whl --target <bundle>/latentbrush/plugin/vendor

Standard library and ``packaging`` (Requires-Python and versions; the backend install that
the installers run from has it).
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

PACKAGE = "websockets"
MIN_VERSION = (13, 0)  # the asyncio client API the plugin uses
DEFAULT_MIN_PYTHON = "3.10"
SKIP_SUFFIXES = (".so", ".pyd", ".c", ".pyc")
MANIFEST = "VENDORED.json"


class VendorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Source:
    """The package's files (relative path -> bytes), its version, Requires-Python and licence text."""

    files: dict[str, bytes]
    version: str
    requires_python: str
    license_text: str
    origin: str


def _parse_metadata(text: str) -> tuple[str, str]:
    meta = email.parser.Parser().parsestr(text)
    return meta.get("Version", "0"), meta.get("Requires-Python", "") or ""


def _keep(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    if ".." in parts:  # a crafted wheel must not write outside the vendor folder
        return False
    return bool(parts) and parts[0] == PACKAGE and "__pycache__" not in parts and not rel.endswith(SKIP_SUFFIXES)


def from_wheel(path: Path) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VendorError(f"{path} is not a readable wheel: {exc}")
    with archive:
        names = archive.namelist()
        meta_name = next((n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
        if meta_name is None:
            raise VendorError(f"{path} has no .dist-info/METADATA; is it a wheel?")
        version, requires = _parse_metadata(archive.read(meta_name).decode("utf-8"))
        files = {n: archive.read(n) for n in names if _keep(n) and not n.endswith("/")}
        licences = [n for n in names if ".dist-info/" in n and "LICENSE" in n.upper() and not n.endswith("/")]
        license_text = archive.read(licences[0]).decode("utf-8", "replace") if licences else ""
    return Source(files, version, requires, license_text, str(path))


def from_installed() -> Source:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise VendorError(f"{PACKAGE} is not installed in {sys.executable}; pass --wheel")
    version, requires = dist.version, dist.metadata.get("Requires-Python", "") or ""
    files: dict[str, bytes] = {}
    license_text = ""
    for entry in dist.files or ():
        rel = str(entry).replace("\\", "/")
        if _keep(rel):
            files[rel] = Path(dist.locate_file(entry)).read_bytes()
        elif ".dist-info/" in rel and "LICENSE" in rel.upper() and not license_text:
            license_text = Path(dist.locate_file(entry)).read_text("utf-8", "replace")
    return Source(files, version, requires, license_text, str(dist.locate_file(PACKAGE)))


def python_allowed(requires: str, python: str) -> bool:
    """Does ``python`` (like "3.10") satisfy a Requires-Python string such as ">=3.9, !=3.9.1"?"""
    try:
        return SpecifierSet(requires).contains(python, prereleases=True)
    except (InvalidSpecifier, InvalidVersion) as exc:
        raise VendorError(f"cannot read Requires-Python {requires!r} ({exc}); use --force to skip the check") from exc


def check_source(source: Source, min_python: str) -> None:
    try:
        release = Version(source.version).release
    except InvalidVersion as exc:
        raise VendorError(f"{PACKAGE} has an unreadable version {source.version!r}") from exc
    if release[:2] < MIN_VERSION:
        raise VendorError(f"{PACKAGE} {source.version} is too old: the plugin needs {MIN_VERSION[0]}.{MIN_VERSION[1]}+")
    if not python_allowed(source.requires_python, min_python):
        raise VendorError(
            f"{PACKAGE} {source.version} requires Python {source.requires_python}, but the plugin must run on "
            f"Python {min_python}: use a wheel of websockets 13-15 (pip download \"websockets>=13,<16\" --no-deps "
            f"--only-binary=:all:) or pass --min-python"
        )
    if f"{PACKAGE}/__init__.py" not in source.files or f"{PACKAGE}/asyncio/client.py" not in source.files:
        raise VendorError(f"{source.origin} lacks {PACKAGE}/__init__.py or {PACKAGE}/asyncio/client.py")


def write_vendor(source: Source, target: Path) -> Path:
    """Replace ``target/websockets`` with the source's files; returns the package folder."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=target))
    try:
        for rel, data in sorted(source.files.items()):
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        package = staging / PACKAGE
        if source.license_text:
            (package / "LICENSE").write_text(source.license_text, "utf-8")
        manifest = {"name": PACKAGE, "version": source.version, "requires_python": source.requires_python,
                    "source": source.origin, "files": len(source.files)}
        (package / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        final = target / PACKAGE
        if final.exists():
            shutil.rmtree(final)
        package.rename(final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify(target: Path, python: str = sys.executable) -> str:
    """Import the vendored copy in a fresh, isolated interpreter; returns its version."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import websockets, websockets.asyncio.client as c; "
        "assert c.__file__.startswith(sys.argv[1]), c.__file__; print(websockets.__version__)"
    )
    done = subprocess.run([python, "-I", "-B", "-c", code, str(target)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise VendorError(f"the vendored copy does not import with {python}:\n{done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


COMPATIBLE_SPEC = "websockets>=13,<16"  # the newest series that still runs on Python 3.10


def download_compatible(min_python: str, folder: Path) -> Path:
    """Fetch a websockets wheel that runs on ``min_python`` with pip (only .py files are vendored,
    so the wheel's platform does not matter)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--python-version", min_python, "-d", str(folder), COMPATIBLE_SPEC,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    wheels = sorted(folder.glob("websockets-*.whl"))
    if done.returncode != 0 or not wheels:
        raise VendorError(f"could not download {COMPATIBLE_SPEC} for Python {min_python}: {done.stderr.strip()[-500:]}")
    return wheels[-1]


def pick_source(wheel: Path | None, min_python: str, force: bool, scratch: Path) -> Source:
    """The given wheel, else the installed copy, else (when that is too new) a downloaded compatible wheel."""
    if wheel is not None:
        source = from_wheel(wheel)
    else:
        source = from_installed()
        if not force and not python_allowed(source.requires_python, min_python):
            print(f"vendor_websockets: installed websockets {source.version} needs Python {source.requires_python}; "
                  f"downloading {COMPATIBLE_SPEC}", file=sys.stderr)
            try:
                source = from_wheel(download_compatible(min_python, scratch))
            except VendorError as exc:  # offline, or no series fits: say so, then why the installed one won't do
                print(f"vendor_websockets: {exc}", file=sys.stderr)
    if not force:
        check_source(source, min_python)
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, type=Path, help="vendor folder (gets a websockets/ inside)")
    parser.add_argument("--wheel", type=Path, help="a websockets wheel (default: the copy installed here)")
    parser.add_argument("--min-python", default=DEFAULT_MIN_PYTHON, help="oldest Python the bundle must run on")
    parser.add_argument("--force", action="store_true", help="skip the Requires-Python check")
    parser.add_argument("--no-verify", action="store_true", help="do not test-import the copy")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            source = pick_source(args.wheel, args.min_python, args.force, Path(scratch))
        folder = write_vendor(source, args.target)
        version = source.version if args.no_verify else verify(args.target)
    except VendorError as exc:
        print(f"vendor_websockets: {exc}", file=sys.stderr)
        return 1
    print(f"vendored websockets {version} ({len(source.files)} files, from {source.origin}) into {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
