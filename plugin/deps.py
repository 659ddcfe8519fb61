"""Check the plugin's one third-party dependency, ``websockets``, at the moment it is needed.

Inside Krita or GIMP the package comes vendored in ``latentbrush/plugin/vendor/`` (written by
``installers/vendor_websockets.py``); in a development checkout it is simply installed.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
MIN_WEBSOCKETS = (13, 0)  # the asyncio client API (websockets.asyncio.client) appeared in 13.0


class MissingDependency(ImportError):
    """A dependency is missing or too old; the message says what to install or which bundle to use."""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _add_vendor_dir(vendor_dir: Path) -> None:
    """Put the vendored copy first, so it wins over an older websockets of the host's Python."""
    if (vendor_dir / "websockets").is_dir() and str(vendor_dir) not in sys.path:
        sys.path.insert(0, str(vendor_dir))


def ensure_websockets(vendor_dir: Path = VENDOR_DIR) -> str:
    """Make ``websockets`` importable and recent enough; returns its version or raises MissingDependency."""
    if "websockets" not in sys.modules:
        _add_vendor_dir(vendor_dir)
    hint = (
        "latentbrush needs the Python package 'websockets' (13 or newer). "
        f"Install the plugin from a release bundle (it vendors websockets into {vendor_dir}), "
        "run `python installers/vendor_websockets.py --target <plugin>/latentbrush/plugin/vendor`, "
        "or `pip install 'websockets>=13'` into the Python that runs the plugin "
        f"({sys.executable}, Python {sys.version_info.major}.{sys.version_info.minor})."
    )
    try:
        module = importlib.import_module("websockets")
        importlib.import_module("websockets.asyncio.client")
    except ImportError as exc:
        raise MissingDependency(f"{hint} Import failed: {exc}") from exc
    version = str(getattr(module, "__version__", "0"))
    if _version_tuple(version) < MIN_WEBSOCKETS:
        raise MissingDependency(f"{hint} Found websockets {version} at {getattr(module, '__file__', '?')}.")
    return version
