"""Background duties of every service that owns jobs: deadlines, retry backoff, webhooks.

Any number of replicas may run them: each step is an atomic script, so two
replicas cancelling the same job at its deadline or promoting the same retry
do it once. Run with :func:`start_job_maintenance` next to the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from beatflow.common.jobs.queue import JobQueue
from beatflow.common.jobs.webhooks import WebhookStore, run_delivery_loop
from beatflow.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


async def run_sweeper(queue: JobQueue, kinds: Sequence[str], stop: asyncio.Event, *, every_s: float = 0.5) -> None:
    """Cancel jobs past their deadline and queue failed jobs whose backoff is over, until ``stop``."""
    while not stop.is_set():
        try:
            await queue.expire_deadlines()
            for kind in kinds:
                await queue.promote_due(kind)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: keep trying
            log.warning("job sweeper: %s; retrying", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def start_job_maintenance(
    queue: JobQueue, kinds: Sequence[str], webhooks: WebhookStore | None = None, *, every_s: float = 0.5
) -> Callable[[], Awaitable[None]]:
    """Start the sweeper and the webhook delivery loop; returns an async ``stop`` (with a deadline)."""
    stop = asyncio.Event()
    store = webhooks or WebhookStore(queue.redis, prefix=queue.prefix, allow_private=queue.webhook_allow_private)
    tasks = [
        asyncio.create_task(run_sweeper(queue, kinds, stop, every_s=every_s), name="job-sweeper"),
        asyncio.create_task(run_delivery_loop(store, stop, poll_s=every_s), name="webhook-delivery"),
    ]

    async def close(timeout_s: float = 5.0) -> None:
        stop.set()
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        if pending:
            await cancel_and_wait(pending, timeout_s)

    return close
