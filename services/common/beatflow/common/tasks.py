"""Stopping background asyncio tasks for sure: ``cancel_and_wait``.

One ``task.cancel()`` is not enough on Python 3.11. ``asyncio.wait_for`` with a timeout
swallows a cancellation that arrives just as the future it waits on completes: it returns
the result and the task carries on (CPython gh-86296, fixed in 3.12 where ``wait_for`` is
built on ``asyncio.timeout``). redis-py wraps its socket reads and writes in ``wait_for``
whenever a socket timeout is set, so a loop that talks to Redis, cancelled while a command
finishes, can lose the cancellation and run on forever; the code that cancelled it then
waits forever too. Seen here as a queue-depth sampler whose ``stop()`` never returned: a
service shutdown held up, and a test stuck until its timeout.

``cancel_and_wait`` cancels again every few milliseconds until the task has ended, so the
next await the task reaches (a sleep, the next command) raises; and it gives up after a
deadline, with a log line, instead of waiting forever. Nothing in asyncio or a kept library
does this (``asyncio.timeout`` bounds a wait but cancels only once), hence these lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_S = 0.05


async def cancel_and_wait(tasks: asyncio.Task[Any] | Iterable[asyncio.Task[Any]], timeout_s: float = 5.0) -> bool:
    """Cancel ``tasks`` and wait until each has ended, re-cancelling any that swallowed it.

    Returns True when all ended within ``timeout_s``; False (and a warning naming them)
    otherwise. Their results and errors are collected, never raised. Cancelling the caller
    while it waits leaves the tasks cancelled but does not wait for them.
    """
    pending = {tasks} if isinstance(tasks, asyncio.Task) else set(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        pending = {t for t in pending if not t.done()}
        if not pending:
            return True
        left = deadline - loop.time()
        if left <= 0:
            log.warning(
                "task(s) still running %.1fs after cancel: %s", timeout_s, ", ".join(t.get_name() for t in pending)
            )
            return False
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
        for task in pending:
            if task.done() and not task.cancelled():
                task.exception()  # collected: a task that ended with an error is not "never retrieved"
