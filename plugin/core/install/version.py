"""This plugin's latentbrush version: the server it installs from the package index has the same one."""

from __future__ import annotations

import importlib.metadata

# Inside Krita and GIMP the plugin is copied files, not an installed distribution: then this is the answer.
# tests/plugin/install checks it against pyproject.toml.
VERSION = "0.1.0"


def package_version() -> str:
    try:
        return importlib.metadata.version("latentbrush")
    except importlib.metadata.PackageNotFoundError:
        return VERSION
