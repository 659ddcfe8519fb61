"""A job whose replica died gets one more try on another replica, then a clear error (never a stuck job).

Pure: ``attempt`` is any call that raises ``ReplicaLost`` when the process running it went away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from latentbrush.protocol import ErrorCode

from ..events import EngineError, JobCancelled

T = TypeVar("T")

RETRIES = 1  # one more replica per job: a second death is more likely the job's fault than bad luck


class ReplicaLost(Exception):
    """The replica running a job went away mid-job (its process died, its node left the cluster)."""


def with_retry(
    attempt: Callable[[int], T],
    *,
    retries: int = RETRIES,
    cancelled: Callable[[], bool] = lambda: False,
    on_retry: Callable[[int, ReplicaLost], None] = lambda n, exc: None,
) -> T:
    """``attempt(0)``, and on ``ReplicaLost`` ``attempt(1)`` ... up to ``retries`` more times.

    A job cancelled meanwhile is not tried again (``JobCancelled``); after the last try the
    client gets an ``EngineError`` that says what happened, in words.
    """
    for number in range(retries + 1):
        try:
            return attempt(number)
        except ReplicaLost as exc:
            if cancelled():
                raise JobCancelled() from exc
            if number == retries:
                tries = "once" if retries == 0 else f"{retries + 1} times"
                raise EngineError(
                    ErrorCode.INTERNAL,
                    f"the GPU worker running this job stopped {tries} (the job was retried on another "
                    "worker before giving up); try again, and tell the studio's admin if it keeps happening",
                ) from exc
            on_retry(number, exc)
    raise AssertionError("unreachable")  # the loop returns or raises
