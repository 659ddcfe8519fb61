"""The field-constraint vocabulary every message module uses, defined once.

``validate.py`` walks the ``field(metadata=constraint(...))`` of each dataclass; the shared
limits and patterns of the wire's values (ids, blob addresses, prompts, seeds) live here so
``messages.py``, ``inputs.py`` and ``geometry.py`` cannot disagree about them.
"""

from __future__ import annotations

from typing import Any

MAX_ID_LEN = 64
MAX_PROMPT_LEN = 8000
MAX_SEED = 2**32 - 1
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"


def constraint(**constraints: Any) -> dict[str, Any]:
    """Field metadata: min, max (numbers), max_len, pattern (strings), items_min, items_max (arrays).

    On an array field, min/max/max_len/pattern apply to every item; on a ``dict[str, <dataclass>]`` table,
    items_max bounds the entries and max_len/pattern apply to the names.
    """
    return constraints
