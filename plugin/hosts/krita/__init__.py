"""The Krita host: document adapter, preview layer, docker, actions, asyncio-in-Qt pump.

Only ``extension`` and ``docker`` import Krita's ``krita`` module; ``actions``, ``colorspace``
and ``settings`` are plain Python (the installer uses ``actions``); the rest needs only Qt.
"""
