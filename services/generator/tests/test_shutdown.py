"""Stopping the generator always ends: past the grace period and the stop timeout, a worker
that will not stop is cancelled (again, should it lose a cancellation) and close() returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from beatflow.generator.config import GeneratorSettings
from beatflow.generator.server import GeneratorApp


async def test_close_is_bounded_when_the_worker_will_not_stop(redis_url: str, tmp_path: Path) -> None:
    settings = GeneratorSettings(
        redis_url=redis_url, blob_dir=tmp_path / "blobs", grace_period_s=0.2, stop_timeout_s=0.3
    )
    app = GeneratorApp(settings)
    cancels = 0
    let_go = False

    async def stubborn() -> None:  # ignores the stop event and every cancel, like a hung decode
        nonlocal cancels
        while not let_go:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancels += 1

    app._worker_task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(app.close(), 10)  # returns although the worker never finished
    assert cancels >= 1 and not app._worker_task.done()
    let_go = True
    app._worker_task.cancel()
    await asyncio.wait([app._worker_task], timeout=10)
    assert app._worker_task.done()


async def test_close_stops_a_worker_that_lost_one_cancellation(redis_url: str, tmp_path: Path) -> None:
    """A cancellation lost once (Python 3.11's wait_for can drop one) is sent again: the worker ends."""
    settings = GeneratorSettings(
        redis_url=redis_url, blob_dir=tmp_path / "blobs", grace_period_s=0.2, stop_timeout_s=5.0
    )
    app = GeneratorApp(settings)
    cancels = 0

    async def loses_the_first() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise

    app._worker_task = asyncio.create_task(loses_the_first())
    await asyncio.sleep(0)
    await asyncio.wait_for(app.close(), 30)
    assert cancels == 2 and app._worker_task.cancelled()
