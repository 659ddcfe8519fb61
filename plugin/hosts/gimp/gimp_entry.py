#!/usr/bin/env python3
"""GIMP 3 plug-in entry point; the installer copies it to ``plug-ins/latentbrush/latentbrush.py``.

GIMP starts this file as a fresh process for every procedure call (and once at start-up to query
the procedures). It puts the bundled ``lib/`` (latentbrush + vendored websockets) on sys.path and
hands over to ``latentbrush.plugin.hosts.gimp.plugin``.
"""

import os
import sys


def _use_bundle() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    lib = os.path.join(here, "lib")
    # sys.path[0] is this folder, where "latentbrush.py" (this file) would shadow the
    # latentbrush package: replace it with the bundle.
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path[0] = lib
    elif lib not in sys.path:
        sys.path.insert(0, lib)


if __name__ == "__main__":
    _use_bundle()
    import gi

    gi.require_version("Gimp", "3.0")
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gegl", "0.4")
    from latentbrush.plugin.hosts.gimp.plugin import main

    main(sys.argv)
