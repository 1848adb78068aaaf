"""A pipelined Redis connection for hot single-command reads (the gateway's task status poll).

Why hand-written: redis-py's asyncio client (8.1, with hiredis) spends most of a
command's CPU around the command, not in it: a connection checked out of and back
into its pool per command, its observability events, retry wrapper and packing, and
an ``asyncio.wait_for`` per read. With 64 concurrent callers on uvloop it cost 65-72 µs
of CPU per GET on the shared 2-core build machine (140-165 µs on a quiet one, by an
earlier measurement), whatever its timeout, health-check and retry settings, and a
single-connection client 75-78 µs; ``coredis`` 6.9 cost 100 µs. One connection whose
requests are written as they come and whose replies are matched in order (hiredis's
``Reader`` parses them, ``hiredis.pack_command`` packs) cost 17 µs in the same test.
After the gateway's fast path, redis-py's command path was about a fifth of a status
poll's CPU. No kept library does this cheaply; redis-py stays for everything else.

What it does, and what it leaves to redis-py:

* One TCP connection per :class:`PipelinedReads`, opened on first use (within
  ``connect_timeout``), with AUTH and SELECT when the URL names them; plain
  ``redis://`` URLs only (:func:`supports` says which: TLS and unix sockets stay on
  redis-py).
* A reply that has not come within ``timeout`` fails its command with redis-py's
  ``TimeoutError`` and drops the connection (the replies after it could no longer be
  matched), failing every command still waiting with ``ConnectionError``; a lost
  connection does the same. The next command connects again: a Redis restart costs the
  commands in flight, and a dead Redis is a quick ``ConnectionError``, never a hang.
* Error replies raise redis-py's exceptions (``NoScriptError`` for NOSCRIPT, else
  ``ResponseError``), so callers handle them as they handle redis-py's.
* A caller that is cancelled leaves its reply to be read and dropped.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def supports(url: str) -> bool:
    """Whether :class:`PipelinedReads` can serve this Redis URL (``redis://host[:port][/db]``)."""
    parts = urlsplit(url)
    return parts.scheme == "redis" and bool(parts.hostname) and not parts.query


def _error(reply: hiredis.ReplyError) -> ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream cannot be trusted
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = waiting.popleft()
            if not future.done():  # (a cancelled caller's reply is dropped)
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(reply))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost: {exc}" if exc else "Redis closed the connection"))

    def fail(self, error: Exception) -> None:
        """Close the connection; every command still waiting gets ``error``."""
        if self.lost is None:
            self.lost = error
        if self.transport is not None:
            self.transport.close()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


def _retrieve(attempt: asyncio.Future[Any]) -> None:
    """Mark a connection attempt's error as seen (its callers may all have been cancelled)."""
    if not attempt.cancelled():
        attempt.exception()


class PipelinedReads:
    """Single commands over one pipelined connection (see the module docstring)."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, timeout: float = 2.0) -> None:
        if not supports(url):
            raise ValueError("PipelinedReads serves redis://host[:port][/db] URLs only")
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and wait for its reply (redis-py's exceptions on failure)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        transport = protocol.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(future)
        transport.write(hiredis.pack_command(args))
        timer = loop.call_later(self.timeout, self._timed_out, protocol, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _timed_out(self, protocol: _Protocol, future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(RedisTimeoutError(f"Redis did not answer within {self.timeout:g} s"))
            protocol.fail(RedisConnectionError("Redis connection dropped after a timed-out command"))

    async def _connect(self) -> _Protocol:
        # one attempt at a time: the callers that arrive meanwhile wait for it (a finished
        # attempt, left by callers that were cancelled, is not reused: its answer is stale)
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = self._connecting = asyncio.ensure_future(self._open())
            connecting.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        except TimeoutError:
            raise RedisTimeoutError(f"no connection to Redis at {self.host}:{self.port} within timeout") from None
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc
        self._protocol = protocol
        setup: list[tuple[Any, ...]] = []
        if self.password is not None:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        try:
            for command in setup:
                await self.execute(*command)
        except BaseException:
            # not left open half set up: the next command connects (and authenticates) again
            protocol.fail(RedisConnectionError("Redis connection setup failed"))
            raise
        return protocol

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("closed"))
            self._protocol = None
