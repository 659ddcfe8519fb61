"""GIMP 3 host: a Python plug-in (gi: Gimp, GimpUi, Gegl) on the host-free core.

``gimp_entry.py`` is the executable GIMP starts (installed as ``plug-ins/latentbrush/latentbrush.py``
by ``installers/gimp_install.py``); ``plugin.py`` registers the procedures; ``host.py`` is the
``Host``; ``runner.py`` runs one job; ``jobfiles.py`` carries Cancel between plug-in processes.
"""
