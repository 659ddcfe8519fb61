"""Write valid.json and invalid.json from the hand-written cases beside this file.

    python protocol/vectors/build_vectors.py          # rewrite the JSON files
    python protocol/vectors/build_vectors.py --check  # exit 1 if they are out of date

Standard library only; it never imports the decoder it tests (see README.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the case modules sit beside this script, outside any package

from cases_invalid import invalid_cases  # noqa: E402
from cases_valid import valid_cases  # noqa: E402
from vector_kit import DEFAULT_LIMITS  # noqa: E402

FORMAT_VERSION = 1


def _document(kind: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    names = [c["name"] for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"duplicate case names: {duplicates}")
    return {
        "format": FORMAT_VERSION,
        "protocol": 1,
        "minor": 1,  # 1.1: named job inputs
        "kind": kind,
        "default_limits": DEFAULT_LIMITS,
        "cases": cases,
    }


def documents() -> dict[str, str]:
    """File name -> exact file text."""
    docs = {"valid.json": _document("valid", valid_cases()), "invalid.json": _document("invalid", invalid_cases())}
    return {name: json.dumps(doc, indent=1, ensure_ascii=True) + "\n" for name, doc in docs.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, body in documents().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != body:
                stale.append(name)
        else:
            path.write_text(body, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
