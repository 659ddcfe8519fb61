"""latentbrush for Krita: Krita imports this package at start; it registers the docker and actions.

This file is the root of the installed bundle (``pykrita/latentbrush/``), beside the subpackages
``plugin`` (latentbrush.plugin), ``protocol`` (latentbrush.protocol) and the vendored websockets
in ``plugin/vendor``. Built by ``installers/krita_install.py``.
"""

from .plugin.hosts.krita.extension import register

register()
