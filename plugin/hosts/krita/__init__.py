"""The Krita host: document adapter, preview layer, docker, actions, asyncio-in-Qt pump.

Only ``extension``, ``docker`` and ``session`` need Krita's ``krita`` module or Qt at import;
``actions``, ``colorspace`` and ``settings`` are plain Python (the installer and tests use them).
"""
