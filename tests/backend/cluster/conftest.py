"""The cluster tests share the server tests' protocol client (``server_harness``) and fake engine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))  # server_harness, server_fakes
