"""The two ways an install can go wrong: impossible to plan, or a step failed."""

from __future__ import annotations


class InstallError(RuntimeError):
    """The action cannot be planned here (no usable Python, not installed yet, ...); the message says why."""


class InstallFailed(RuntimeError):
    """A step of a plan failed; the message says what happened in plain words and what to try."""
