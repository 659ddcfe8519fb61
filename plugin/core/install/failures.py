"""Why a step failed, in plain words, from its exit code and the last lines it printed (pip's or uv's)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .plan import Step


@dataclass(frozen=True)
class Failure:
    kind: str  # "no-network", "no-compiler", "disk-full", "python-version", "permission", "no-venv", "unknown"
    message: str  # plain words and what to try


# (kind, patterns, what to say); the first kind with a matching pattern wins, so the specific come first
_KINDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("disk-full", (r"No space left on device", r"\[Errno 28\]", r"os error 28", r"not enough space on the disk"),
     "the disk is full. The server needs about 6 GB free (PyTorch is big): free some space and try again."),
    ("python-version", (r"Requires-Python", r"requires a different Python", r"does not satisfy Python",
                        r"current Python version \([\d.]+\) does not satisfy"),
     "this Python version is not supported by a package the server needs. Use Python 3.11 or 3.12 "
     "(or install uv, which brings its own Python), then run the install again."),
    ("no-venv", (r"ensurepip is not\s+available", r"install the python3-venv", r"No module named venv",
                 r"No module named ensurepip"),
     "this Python cannot create environments. On Debian or Ubuntu install it with "
     "`sudo apt install python3-venv`, or install uv, then try again."),
    ("no-compiler", (r"error: command '(?:[\w./-]*gcc|[\w./-]*cc|clang|cl\.exe)' failed",
                     r"Microsoft Visual C\+\+ 14\.0 or greater is required", r"unable to execute '(?:gcc|cc)'",
                     r"No such file or directory: '(?:gcc|cc)'", r"could not find a C compiler"),
     "a package had to be built from source code and there is no C compiler. That usually means it has no "
     "ready-made build for this Python: use Python 3.11 or 3.12 (or install uv), or install a compiler "
     "(Linux: `sudo apt install build-essential`, Windows: Visual Studio Build Tools)."),
    ("permission", (r"Permission denied", r"\[Errno 13\]", r"os error 13", r"Access is denied", r"\[WinError 5\]",
                    r"Operation not permitted"),
     "a file could not be written (permission denied). Make sure the install folder belongs to you and that no "
     "running server or program is using it (stop the server first), then try again."),
    ("no-network", (r"Could not find a version that satisfies", r"No matching distribution found",
                    r"Failed to establish a new connection", r"Name or service not known",
                    r"Temporary failure in name resolution", r"getaddrinfo failed", r"Network is unreachable",
                    r"Connection (?:refused|reset|timed out)", r"Read timed out", r"error sending request for url",
                    r"dns error", r"failed to lookup address", r"Failed to fetch", r"SSLError", r"CERTIFICATE_VERIFY"),
     "the packages could not be downloaded. Check the internet connection (and a proxy, if you use one); if it "
     "works, the package index may have no build for this computer — setting LATENTBRUSH_TORCH picks another."),
)


def classify_failure(exit_code: int, log_tail: str) -> Failure | None:
    """The known cause in ``log_tail``, or None."""
    for kind, patterns, message in _KINDS:
        if any(re.search(p, log_tail, re.IGNORECASE) for p in patterns):
            return Failure(kind, message)
    if exit_code < 0 or exit_code in (137, -9):
        return Failure("stopped", "the step was stopped before it finished (cancelled, or the computer ran out "
                                  "of memory). Run it again.")
    return None


def explain_failure(step: Step, exit_code: int, log_tail: str, log_file: Path | None = None) -> str:
    """``<step> failed: <cause and what to try>``; unknown causes point at the log."""
    where = f"see the log at {log_file}" if log_file else "see the install log"
    failure = classify_failure(exit_code, log_tail)
    if failure is None:
        last = next((line.strip() for line in reversed(log_tail.splitlines()) if line.strip()), "")
        detail = f' The last line was: "{last[:300]}".' if last else ""
        return f"{step.title} failed (exit code {exit_code}).{detail} For the details {where}."
    return f"{step.title} failed: {failure.message} (Details: {where}.)"
