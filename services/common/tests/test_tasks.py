"""``cancel_and_wait`` stops tasks that swallow a cancellation, and gives up on one that never ends."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from beatflow.common import metrics
from beatflow.common.jobs import JobQueue
from beatflow.common.tasks import cancel_and_wait


async def _swallows_first_cancel(ticks: list[int]) -> None:
    """A loop whose first cancellation is lost, as Python 3.11's ``wait_for`` can lose one."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        ticks.append(1)


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    ticks: list[int] = []
    once = asyncio.create_task(_swallows_first_cancel(ticks))
    await asyncio.sleep(0.01)
    once.cancel()  # what a plain cancel does: the loop carries on
    done, _ = await asyncio.wait([once], timeout=0.3)
    assert not done and not once.done()

    again = asyncio.create_task(_swallows_first_cancel(ticks))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait([once, again], timeout_s=10) is True
    assert once.cancelled() and again.cancelled()


async def test_a_task_that_never_ends_is_given_up_after_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="beatflow.common.tasks"):
        assert await cancel_and_wait(task, timeout_s=0.3) is False
    assert loop.time() - started < 10
    assert "stubborn" in caplog.text
    assert not task.done()
    task.get_coro().close()  # type: ignore[union-attr]


async def test_errors_of_cancelled_tasks_are_collected_not_raised() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout_s=10) is True
    assert isinstance(task.exception(), RuntimeError)


async def test_queue_depth_sampler_stops_every_time_against_a_real_redis(client: aioredis.Redis) -> None:
    """The sampler busy on Redis when stopped: each stop returns (a lost cancellation once hung it)."""
    queue = JobQueue(client, prefix="stop-test")
    await queue.submit("stop-a", {"n": 1})
    for n in range(20):
        stop = metrics.start_queue_depth_sampler(queue, ["stop-a", "stop-b"], interval_s=0.0)
        await asyncio.sleep(0.001 * (n % 7))
        stopping = asyncio.ensure_future(stop())
        done, _ = await asyncio.wait([stopping], timeout=30)
        assert done, f"stop() of sampler {n} did not return"
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "queue-depth-sampler" and not t.done()]
