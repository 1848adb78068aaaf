"""A finished job's outputs become its owner's blobs in vcs, once, as the job completes.

The worker that completes a job registers each output blob with vcs
(``RegisterBlob``: owner, key, content type, size from the blob store) before
the job is recorded SUCCEEDED, so every reader that sees the finished job (the
gateway's task, SSE and WebSocket views, a webhook receiver) may at once
download the outputs, analyse or separate them, and commit them, without any
read path registering anything.

Registration is idempotent (vcs upserts), so a job run twice (at-least-once
delivery) registers twice harmlessly. While vcs cannot be reached, it is
retried with backoff for ``give_up_s`` (the job's heartbeats go on meanwhile);
then the completion fails with UNAVAILABLE and the job is retried like any
other transient failure: a job is never SUCCEEDED with unregistered outputs.
A job without an owner, or whose owner vcs does not know, has nothing to register.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import grpc

from beatflow.common import grpctls
from beatflow.common.blobstore import BlobStore, make_blob_store
from beatflow.common.errors import NotFound, Unavailable
from beatflow.common.jobs.backoff import backoff_s
from beatflow.v1 import vcs_pb2, vcs_pb2_grpc

log = logging.getLogger(__name__)

_RETRY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
_NO_SUCH_OWNER = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND)


class OutputRegistrar:
    """``await registrar(owner, result_blobs)``: register the outputs with vcs (see the module docstring)."""

    def __init__(
        self,
        vcs_addr: str,
        settings: Any,
        store: BlobStore | None = None,
        *,
        timeout_s: float = 10.0,
        give_up_s: float = 60.0,
    ) -> None:
        self.vcs_addr = vcs_addr
        self._settings = settings
        self._store = store
        self.timeout_s = timeout_s
        self.give_up_s = give_up_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: vcs_pb2_grpc.VcsStub | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> OutputRegistrar | None:
        """A registrar for ``settings.vcs_addr``; None (with a warning) when no vcs is configured."""
        addr = str(getattr(settings, "vcs_addr", "") or "")
        if not addr:
            log.warning(
                "BEATFLOW_VCS_ADDR is not set: job outputs are not registered with vcs, "
                "so their owners cannot download or commit them"
            )
            return None
        return cls(addr, settings)

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            self._store = make_blob_store(self._settings)
        return self._store

    def _vcs(self) -> vcs_pb2_grpc.VcsStub:
        if self._stub is None:  # made on first use, on the running event loop
            self._channel = grpctls.aio_channel(self.vcs_addr, self._settings)
            self._stub = vcs_pb2_grpc.VcsStub(self._channel)
        return self._stub

    async def __call__(self, owner: str, result_blobs: Mapping[str, str]) -> None:
        if not owner or not result_blobs:
            return
        await asyncio.gather(*(self._register(owner, key) for key in sorted(set(result_blobs.values()))))

    async def _register(self, owner: str, key: str) -> None:
        try:
            info = await asyncio.to_thread(self.store.stat, key)
        except NotFound:
            log.warning("output %s of a job of %s is not in the blob store; not registered", key, owner)
            return
        request = vcs_pb2.RegisterBlobRequest(
            actor=owner, blob_key=key, content_type=info.content_type, size_bytes=info.size
        )
        deadline = time.monotonic() + self.give_up_s
        failures = 0
        while True:
            try:
                await self._vcs().RegisterBlob(request, timeout=self.timeout_s)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _NO_SUCH_OWNER:
                    log.warning("job owner %s is not a vcs user; output %s not registered", owner, key)
                    return
                if exc.code() not in _RETRY:
                    raise
                failures += 1
                delay = backoff_s(failures)
                if time.monotonic() + delay > deadline:
                    raise Unavailable(f"vcs at {self.vcs_addr} is unreachable: job outputs not registered") from exc
                log.warning("registering output %s failed (%s); retrying in %.2fs", key, exc.code().name, delay)
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None
