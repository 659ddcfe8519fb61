"""Write planning.json (SPEC.md section 9.10 conformance vectors) from cases_planning.py.

    python protocol/vectors/build_planning.py          # rewrite planning.json
    python protocol/vectors/build_planning.py --check  # exit 1 if it is out of date

Standard library only; the expected boxes come from planning_reference.py (see README.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the case modules sit beside this script, outside any package

from cases_planning import planning_cases  # noqa: E402
from planning_reference import plan  # noqa: E402

FORMAT_VERSION = 2  # 2: outward, soft and mask_outward (the selection is the contract)
PATH = HERE / "planning.json"


def _rect(box: tuple[int, int, int, int]) -> dict[str, int]:
    return dict(zip(("x", "y", "width", "height"), box, strict=True))


def _vector(case: dict[str, Any]) -> dict[str, Any]:
    width, height = case["canvas"]
    out = plan(case["canvas"], case["selection"], case["strength"], case["op"] == "txt2img", case["outward"],
               case["soft"])
    grow, feather, blend, outward = out["edges"]
    vector = {
        "name": case["name"],
        "canvas": {"width": width, "height": height},
        "selection": None if case["selection"] is None else _rect(case["selection"]),
        "strength": case["strength"],
        "op": case["op"],
        "outward": case["outward"],
        "soft": case["soft"],
        "expect": {
            "has_mask": out["has_mask"],
            "mask_bounds": _rect(out["mask_bounds"]),
            "region": _rect(out["region"]),
            "context": _rect(out["context"]),
            "mask_grow": grow,
            "mask_feather": feather,
            "mask_blend": blend,
            "mask_outward": outward,
        },
    }
    if "note" in case:
        vector["note"] = case["note"]
    return vector


def document() -> str:
    cases = planning_cases()
    names = [c["name"] for c in cases]
    if len(set(names)) != len(names):
        raise SystemExit(f"duplicate case names in {names}")
    doc = {"format": FORMAT_VERSION, "spec_section": "9.10", "kind": "planning", "cases": [_vector(c) for c in cases]}
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    body = document()
    if "--check" in argv:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != body:
            print(f"out of date: {PATH.name}; run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
