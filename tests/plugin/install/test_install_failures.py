"""A failed step's log tail (pip's and uv's own words) becomes a cause in plain words and what to try."""

from __future__ import annotations

from pathlib import Path

import pytest
from latentbrush.plugin.core.install.failures import classify_failure, explain_failure
from latentbrush.plugin.core.install.plan import Step

TORCH = Step("Installing PyTorch for NVIDIA GPU (CUDA) (the big download)", ("python", "-m", "pip"))
LOG = Path("/home/ann/.local/share/latentbrush/server/install.log")

PIP_OFFLINE = """\
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by \
'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f2c>: Failed to establish a new \
connection: [Errno -2] Name or service not known')': /simple/torch/
ERROR: Could not find a version that satisfies the requirement torch==2.14.1 (from versions: none)
ERROR: No matching distribution found for torch==2.14.1
"""
UV_OFFLINE = """\
error: Failed to fetch: `https://pypi.org/simple/torch/`
  Caused by: Request failed after 3 retries
  Caused by: error sending request for url (https://pypi.org/simple/torch/)
  Caused by: dns error: failed to lookup address information: Temporary failure in name resolution
"""
PIP_GCC = """\
      building 'xformers._C' extension
      gcc -pthread -Wsign-compare -DNDEBUG -g -fwrapv -O2 -Wall -fPIC -I/usr/include/python3.13 -c x.c -o x.o
      error: command 'gcc' failed: No such file or directory
      [end of output]
  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for xformers
"""
PIP_MSVC = """\
      running build_ext
      building 'safetensors._rust' extension
      error: Microsoft Visual C++ 14.0 or greater is required. Get it with "Microsoft C++ Build Tools": \
https://visualstudio.microsoft.com/visual-cpp-build-tools/
"""
PIP_DISK = """\
Installing collected packages: nvidia-cudnn-cu13, torch
ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device
"""
WIN_DISK = r"""ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device: \
'C:\\Users\\Ann\\AppData\\Local\\latentbrush\\server\\venv\\Lib\\site-packages\\torch\\lib\\cudnn64_9.dll'"""
UV_DISK = "error: Failed to install: torch-2.14.1-cp311-cp311-win_amd64.whl\n  Caused by: No space left on device " \
          "(os error 28)\n"
PIP_PYTHON = """\
Processing ./latentbrush-0.1.0-py3-none-any.whl
ERROR: Package 'latentbrush' requires a different Python: 3.9.18 not in '>=3.10'
"""
PIP_IGNORED = """\
INFO: pip is looking at multiple versions of torch to determine which version is compatible with other requirements.
ERROR: Ignored the following versions that require a different python version: 2.14.1 Requires-Python >=3.10
ERROR: Could not find a version that satisfies the requirement torch==2.14.1 (from versions: none)
"""
PIP_PERMISSION = """\
ERROR: Could not install packages due to an OSError: [Errno 13] Permission denied: \
'/opt/shared/latentbrush/server/venv/lib/python3.11/site-packages/numpy'
Check the permissions.
"""
WIN_LOCKED = r"""ERROR: Could not install packages due to an OSError: [WinError 5] Access is denied: \
'C:\\Users\\Ann\\AppData\\Local\\latentbrush\\server\\venv\\Lib\\site-packages\\torch\\lib\\c10.dll'
Consider using the `--user` option or check the permissions."""
NO_VENV = """\
The virtual environment was not created successfully because ensurepip is not
available.  On Debian/Ubuntu systems, you need to install the python3-venv
package using the following command.
"""


@pytest.mark.parametrize(("tail", "kind", "words"), [
    (PIP_OFFLINE, "no-network", "internet connection"),
    (UV_OFFLINE, "no-network", "internet connection"),
    (PIP_GCC, "no-compiler", "no C compiler"),
    (PIP_MSVC, "no-compiler", "Visual Studio Build Tools"),
    (PIP_DISK, "disk-full", "disk is full"),
    (WIN_DISK, "disk-full", "disk is full"),
    (UV_DISK, "disk-full", "6 GB"),
    (PIP_PYTHON, "python-version", "Python 3.11 or 3.12"),
    (PIP_IGNORED, "python-version", "Python 3.11 or 3.12"),
    (PIP_PERMISSION, "permission", "permission denied"),
    (WIN_LOCKED, "permission", "stop the server first"),
    (NO_VENV, "no-venv", "python3-venv"),
])
def test_known_causes(tail: str, kind: str, words: str) -> None:
    failure = classify_failure(1, tail)
    assert failure is not None and failure.kind == kind
    message = explain_failure(TORCH, 1, tail, LOG)
    assert words in message and message.startswith(TORCH.title + " failed: ")
    assert str(LOG) in message and "Traceback" not in message


def test_an_unknown_cause_points_at_the_log() -> None:
    tail = "Collecting torch==2.14.1\nSegmentation fault (core dumped)\n\n"
    assert classify_failure(139, tail) is None
    message = explain_failure(TORCH, 139, tail, LOG)
    assert f"see the log at {LOG}" in message and "exit code 139" in message
    assert '"Segmentation fault (core dumped)"' in message


def test_a_killed_step_says_it_was_stopped() -> None:
    failure = classify_failure(-9, "Installing collected packages: torch\n")
    assert failure is not None and failure.kind == "stopped" and "memory" in failure.message
