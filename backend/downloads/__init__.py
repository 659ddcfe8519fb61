"""Recommended model sets and their download (``latentbrush-server models``), and ``latentbrush-server doctor``.

Nothing here runs at import: the command line (``cli.py``) imports huggingface_hub and torch only inside the
commands that need them.
"""
