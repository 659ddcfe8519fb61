"""AsyncioPump: asyncio work progresses only through Qt's event loop, errors are reported."""

from __future__ import annotations

import asyncio

import pytest
from latentbrush.plugin.hosts.krita.loop_pump import AsyncioPump
from qt_wait import spin_until


@pytest.fixture
def pump(qapp):
    p = AsyncioPump(busy_ms=1, idle_ms=20)
    yield p
    p.close()


def test_a_coroutine_runs_to_completion_from_qt_events(pump):
    async def work():
        await asyncio.sleep(0.01)
        return 42

    task = pump.submit(work(), busy=True)
    assert not task.done()  # nothing runs until Qt's loop ticks the pump
    spin_until(task.done, "the task")
    assert task.result() == 42


def test_timer_is_fast_while_busy_slow_while_waiting_and_off_when_idle(pump):
    gate = asyncio.Event()

    async def wait_gate():
        await gate.wait()

    assert pump.interval_ms is None  # no tasks: no timer at all
    waiting = pump.submit(wait_gate())
    assert pump.interval_ms == 20  # only a long-lived task: idle rate
    job = pump.submit(asyncio.sleep(0.01), busy=True)
    assert pump.interval_ms == 1
    spin_until(job.done, "the busy task")
    assert pump.interval_ms == 20
    pump.loop.call_soon_threadsafe(gate.set)
    spin_until(waiting.done, "the waiting task")
    assert pump.interval_ms is None


def test_task_errors_are_reported_not_lost(pump):
    failures = []
    pump.failed.connect(failures.append)

    async def broken():
        raise RuntimeError("boom")

    task = pump.submit(broken(), busy=True)
    spin_until(lambda: failures, "the failure report")
    assert task.done() and failures == ["RuntimeError: boom"]


def test_tasks_the_loop_starts_itself_keep_it_ticking(pump):
    # the client starts its own reader task with create_task; the pump must keep stepping for it
    seen = []

    async def spawner():
        async def child():
            await asyncio.sleep(0.02)
            seen.append("child")

        asyncio.get_running_loop().create_task(child())

    pump.submit(spawner())
    spin_until(lambda: seen == ["child"], "the spawned task")


def test_close_cancels_what_is_left(qapp):
    pump = AsyncioPump()
    task = pump.submit(asyncio.sleep(3600))
    pump.close()
    assert task.cancelled()
    with pytest.raises(RuntimeError, match="closed"):
        pump.submit(asyncio.sleep(0))
