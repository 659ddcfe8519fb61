"""The engine's operations, looked up by ``JobRequest.op``: every ``op_<name>.py`` module in this package.

Each such module defines ``OPERATION`` (and, for diffusion, its ``TASK``): see ``operation.py``. The modules are
found by name, so a new operation is its new file and nothing here.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .operation import Operation, PipelineTask

MODULES = tuple(
    importlib.import_module(f"{__package__}.{info.name}")
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda info: info.name)
    if info.name.startswith("op_")
)


def build(operations: tuple[Operation, ...]) -> dict[str, Operation]:
    return {op.name: op for op in operations}


OPERATIONS: dict[str, Operation] = build(tuple(module.OPERATION for module in MODULES))
TASKS: dict[str, PipelineTask] = {task.name: task for op in OPERATIONS.values() for task in op.tasks}
