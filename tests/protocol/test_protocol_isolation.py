"""protocol/ is standard library only and Python 3.10 syntax: hosts (Krita, GIMP) import it as is."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"
SOURCES = sorted(PROTOCOL_DIR.rglob("*.py"))

ISOLATED_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import latentbrush.protocol as protocol
from latentbrush.protocol import decode_client_message, encode_message, messages
hello = messages.ClientHello(protocol=1, client="isolated")
assert decode_client_message(encode_message(hello)) == hello
roots = {name.split(".")[0] for name in sys.modules}
print(json.dumps({
    "file": protocol.__file__,
    "foreign": sorted(r for r in roots if r not in sys.stdlib_module_names and r not in ("latentbrush", "__main__")),
    "site": "site" in sys.modules,
}))
"""


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PROTOCOL_DIR)) for p in SOURCES])
def test_parses_as_python_3_10(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


def test_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    (tmp_path / "latentbrush").mkdir()
    (tmp_path / "latentbrush" / "protocol").symlink_to(PROTOCOL_DIR, target_is_directory=True)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ISOLATED_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["file"].startswith(str(tmp_path)), "imported the installed copy, not the isolated one"
    assert report["foreign"] == []
    assert report["site"] is False
