"""Lets a benchmark run from a plain checkout: maps protocol/ and backend/ onto ``latentbrush.*``.

Needed on machines where the distribution is not installed (a lent GPU box has torch but not this
project); a no-op where ``latentbrush`` is importable.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def map_repo_packages() -> None:
    if importlib.util.find_spec("latentbrush") is not None:
        return
    package = types.ModuleType("latentbrush")
    package.__path__ = []
    sys.modules["latentbrush"] = package
    for name in ("protocol", "backend"):
        spec = importlib.util.spec_from_file_location(
            f"latentbrush.{name}", REPO / name / "__init__.py", submodule_search_locations=[str(REPO / name)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(package, name, module)
