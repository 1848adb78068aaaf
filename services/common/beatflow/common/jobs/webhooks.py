"""Webhooks: signed notifications of job events, delivered durably with retries.

A job submitted with a ``webhook_url`` names the events it wants (``started``,
``progress`` — at most one every few seconds —, ``completed``, ``failed``,
``cancelled``). The job scripts (:mod:`.scripts`) queue a delivery in the same
atomic step that records the event, so an event is never recorded without its
delivery or the other way round.

Redis layout (``bf`` is the prefix):

* ``bf:wh:msg:{event_id}`` — hash: one delivery (owner, job, type, url, the JSON
  payload, attempts, next attempt time, status ``pending``/``delivered``/``dead``,
  last error). The event id is ``evt_{job id}_{job event id}``: stable over
  every attempt and redelivery, so receivers de-duplicate on the
  ``webhook-id`` header.
* ``bf:wh:due`` — sorted set of pending event ids by next attempt time. A
  delivery loop takes due ids by pushing their time one lease ahead (atomic), so
  a loop that dies mid-attempt leaves the delivery due again after the lease:
  a restart loses nothing (at-least-once; a receiver sees a duplicate only
  when the loop died between the receiver's answer and recording it).
* ``bf:wh:dead:{owner}`` — sorted set: the owner's deliveries that kept
  failing for longer than the retry window (``max_age_s``, over a day by
  default), listable and redeliverable through ``beatflow.v1.Jobs``.
* ``bf:wh:secret:{owner}`` — the owner's signing secret (``whsec_`` + base64),
  created on first use and rotatable.

Order: within one delivery loop, one job's events that are due together are sent
one after another in the order they happened, different jobs side by side. No
order is promised beyond that: every job service runs a delivery loop, and an
event that needs a retry can arrive after a later one, so receivers order by the
payload's ``timestamp`` (and de-duplicate on ``webhook-id``).

Signatures follow Standard Webhooks (the ``standardwebhooks`` package):
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">``; receivers verify with any Standard
Webhooks library. Failed attempts (network error, timeout, non-2xx) are retried
after an exponentially growing delay with jitter, capped at ``max_delay_s``.

Targets on loopback, link-local, private and other non-global addresses are
refused at submit and before every attempt (DNS may change), unless the
operator allows them (``job_webhook_allow_private_targets``). Each attempt
resolves the host once, checks that address and connects to it (the ``Host``
header and TLS server name stay the URL's host, so certificates are verified
as usual): a DNS answer that changes between the check and the connection
(DNS rebinding) cannot steer a delivery to an address that was not checked.
Redirects are followed (at most 3) only to targets that pass the same check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import random
import secrets
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from beatflow.common.errors import InvalidArgument, NotFound
from beatflow.common.jobs.model import as_str, decode_mapping

log = logging.getLogger(__name__)

EVENT_TYPES = ("started", "progress", "completed", "failed", "cancelled")
DEFAULT_EVENTS = ("started", "completed", "failed", "cancelled")
MAX_URL_CHARS = 2048
MAX_REDIRECTS = 3


class WebhookTargetRefused(InvalidArgument):
    """The webhook URL is malformed or points at an address that is not allowed."""


def _check_url(url: str) -> tuple[str, int]:
    if len(url) > MAX_URL_CHARS:
        raise WebhookTargetRefused(f"webhook URL longer than {MAX_URL_CHARS} characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetRefused(f"invalid webhook URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("webhook URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise WebhookTargetRefused("webhook URL must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the operating system's resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse malformed URLs and, unless allowed, hosts resolving to non-global addresses."""
    _check_url(url)
    if not allow_private:
        await resolve_target(url, allow_private=False)


async def resolve_target(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> str:
    """The one checked address a delivery to ``url`` connects to.

    Every address the host resolves to must be global (unless allowed); the
    first is returned, so the connection goes where the check looked.
    """
    host, port = _check_url(url)
    try:
        addresses = [host.strip("[]")] if _is_ip(host) else await resolver(host, port)
    except OSError as exc:
        raise WebhookTargetRefused(f"webhook host {host!r} does not resolve: {exc}") from exc
    if not addresses:
        raise WebhookTargetRefused(f"webhook host {host!r} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text)
        mapped = getattr(address, "ipv4_mapped", None)
        if not allow_private and not (mapped or address).is_global:
            raise WebhookTargetRefused(
                f"webhook host {host!r} resolves to {address}, a loopback, link-local or private address"
            )
    return addresses[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Delivery:
    event_id: str
    owner: str
    job_id: str
    type: str
    url: str
    payload: str
    attempts: int
    created_at: float
    next_at: float
    status: str
    last_error: str

    @classmethod
    def from_redis(cls, raw: Any) -> Delivery:
        h = decode_mapping(raw)
        return cls(
            event_id=h.get("id", ""),
            owner=h.get("owner", ""),
            job_id=h.get("job", ""),
            type=h.get("type", ""),
            url=h.get("url", ""),
            payload=h.get("payload", ""),
            attempts=int(h.get("attempts") or 0),
            created_at=float(h.get("created_at") or 0),
            next_at=float(h.get("next_at") or 0),
            status=h.get("status", ""),
            last_error=h.get("last_error", ""),
        )

    def to_proto(self) -> Any:
        from beatflow.v1 import jobs_pb2

        return jobs_pb2.WebhookDelivery(
            event_id=self.event_id,
            owner=self.owner,
            job_id=self.job_id,
            type=self.type,
            url=self.url,
            attempts=self.attempts,
            last_error=self.last_error,
            created_at=self.created_at,
            next_attempt_at=self.next_at,
            status=self.status,
        )


# KEYS: due set; ARGV: now, lease seconds, limit, msg key prefix
# Takes up to `limit` due deliveries by moving their time one lease ahead; returns {hgetall, ...}
_CLAIM = r"""
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[4] .. id
  if redis.call('EXISTS', key) == 1 and redis.call('HGET', key, 'status') == 'pending' then
    redis.call('ZADD', KEYS[1], now + lease, id)
    out[#out + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: msg, due set, owner's dead set; ARGV: ok ('1'/'0'), now, error, next delay, max age,
#       retention ms of a delivered message, retention ms of a dead one
# Returns 1 delivered, 2 scheduled again, 3 dead, 0 not pending (already recorded)
_RECORD = r"""
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
local now = tonumber(ARGV[2])
local id = redis.call('HGET', KEYS[1], 'id')
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered_at', ARGV[2], 'last_error', '')
  redis.call('ZREM', KEYS[2], id)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return 1
end
local created = tonumber(redis.call('HGET', KEYS[1], 'created_at')) or now
if now - created >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'last_error', ARGV[3], 'next_at', '0')
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
  return 3
end
local at = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'last_error', ARGV[3], 'next_at', tostring(at))
redis.call('ZADD', KEYS[2], at, id)
return 2
"""

# KEYS: msg, due set, owner's dead set; ARGV: owner, now
# Returns 1 queued again, 0 not a dead delivery of this owner
_REDELIVER = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local h = redis.call('HMGET', KEYS[1], 'owner', 'status', 'id')
if h[1] ~= ARGV[1] or h[2] ~= 'dead' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', '0', 'created_at', ARGV[2], 'next_at', ARGV[2])
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[3], h[3])
redis.call('ZADD', KEYS[2], ARGV[2], h[3])
return 1
"""


class WebhookStore:
    """Deliveries, secrets and dead letters in Redis (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = "bf",
        allow_private: bool = False,
        backoff_s: float = 5.0,
        max_delay_s: float = 3600.0,
        max_age_s: float = 26 * 3600.0,
        lease_s: float = 60.0,
        retention_s: float = 7 * 86400.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.redis = redis
        self.resolver = resolver
        self.prefix = prefix
        self.allow_private = allow_private
        self.backoff_s = backoff_s
        self.max_delay_s = max_delay_s
        self.max_age_s = max_age_s
        self.lease_s = lease_s
        self.retention_s = retention_s
        self._claim = redis.register_script(_CLAIM)
        self._record = redis.register_script(_RECORD)
        self._redeliver = redis.register_script(_REDELIVER)

    @classmethod
    def from_settings(cls, settings: Any, redis: aioredis.Redis) -> WebhookStore:
        return cls(
            redis,
            allow_private=getattr(settings, "job_webhook_allow_private_targets", False),
            backoff_s=getattr(settings, "job_webhook_backoff_s", 5.0),
            max_delay_s=getattr(settings, "job_webhook_max_delay_s", 3600.0),
            max_age_s=getattr(settings, "job_webhook_max_age_s", 26 * 3600.0),
        )

    # -- keys -------------------------------------------------------------------------------

    def msg_key(self, event_id: str) -> str:
        return f"{self.prefix}:wh:msg:{event_id}"

    def due_key(self) -> str:
        return f"{self.prefix}:wh:due"

    def dead_key(self, owner: str) -> str:
        return f"{self.prefix}:wh:dead:{_escape(owner)}"

    def secret_key(self, owner: str) -> str:
        return f"{self.prefix}:wh:secret:{_escape(owner)}"

    # -- secrets ----------------------------------------------------------------------------

    async def secret(self, owner: str, *, rotate: bool = False) -> str:
        """The owner's signing secret, created on first use; ``rotate`` replaces it."""
        key = self.secret_key(owner)
        if rotate:
            value = new_secret()
            await self.redis.set(key, value)
            return value
        await self.redis.set(key, new_secret(), nx=True)
        return as_str(await self.redis.get(key))

    # -- deliveries -------------------------------------------------------------------------

    async def get(self, event_id: str) -> Delivery | None:
        raw = await self.redis.hgetall(self.msg_key(event_id))
        return Delivery.from_redis(raw) if raw else None

    async def for_job(self, job_id: str) -> list[Delivery]:
        """Deliveries of one job (scans the job's own keys; for tests and support)."""
        out = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:wh:msg:evt_{job_id}_*", count=500):
            raw = await self.redis.hgetall(key)
            if raw:
                out.append(Delivery.from_redis(raw))
        return sorted(out, key=lambda d: d.event_id)

    async def claim_due(self, limit: int) -> list[Delivery]:
        rows = await self._claim(
            keys=[self.due_key()], args=[repr(time.time()), self.lease_s, limit, f"{self.prefix}:wh:msg:"]
        )
        return [Delivery.from_redis(row) for row in rows or []]

    def retry_delay(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failure: exponential, capped, half of it random."""
        step = min(self.max_delay_s, self.backoff_s * 2 ** max(0, attempts - 1))
        return float(step / 2 + random.uniform(0, step / 2))

    async def record(self, delivery: Delivery, ok: bool, error: str = "") -> int:
        """Record an attempt's outcome: 1 delivered, 2 retried later, 3 dead-lettered, 0 stale."""
        return int(
            await self._record(
                keys=[self.msg_key(delivery.event_id), self.due_key(), self.dead_key(delivery.owner)],
                args=[
                    "1" if ok else "0",
                    repr(time.time()),
                    error[:500],
                    repr(self.retry_delay(delivery.attempts + 1)),
                    repr(self.max_age_s),
                    86400 * 1000,
                    int(self.retention_s * 1000),
                ],
            )
        )

    async def dead_letters(self, owner: str, limit: int = 100) -> list[Delivery]:
        """The owner's dead deliveries, newest first."""
        ids = await self.redis.zrevrange(self.dead_key(owner), 0, max(1, limit) - 1)
        out = []
        for raw in ids:
            delivery = await self.get(as_str(raw))
            if delivery is None:
                await self.redis.zrem(self.dead_key(owner), as_str(raw))
            else:
                out.append(delivery)
        return out

    async def redeliver(self, owner: str, event_id: str) -> Delivery:
        """Queue a dead delivery again: same event id, attempts and retry window reset."""
        done = await self._redeliver(
            keys=[self.msg_key(event_id), self.due_key(), self.dead_key(owner)], args=[owner, repr(time.time())]
        )
        if not int(done):
            raise NotFound(f"no dead webhook delivery {event_id!r}")
        delivery = await self.get(event_id)
        assert delivery is not None
        return delivery

    # -- sending ----------------------------------------------------------------------------

    async def attempt(
        self, client: httpx.AsyncClient, delivery: Delivery, secret: str | None = None
    ) -> tuple[bool, str]:
        """POST the signed payload (following allowed redirects); (delivered, error)."""
        signer = Webhook(secret or await self.secret(delivery.owner))
        now = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(delivery.event_id, now, delivery.payload),
            "user-agent": "beatflow-webhooks/1",
        }
        url = delivery.url
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                address = await resolve_target(url, allow_private=self.allow_private, resolver=self.resolver)
                target = httpx.URL(url)
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                response = await client.post(
                    target.copy_with(host=address),  # connect to the checked address, not a second lookup
                    content=delivery.payload.encode(),
                    headers={**headers, "host": target.netloc.decode("ascii")},
                    extensions=extensions,
                )
                if response.is_redirect and "location" in response.headers:
                    url = str(target.join(response.headers["location"]))
                    continue
                if response.is_success:
                    return True, ""
                return False, f"HTTP {response.status_code}"
            return False, "too many redirects"
        except InvalidArgument as exc:
            return False, str(exc)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"


def _escape(owner: str) -> str:
    return owner.replace("%", "%25").replace(":", "%3A")


async def run_delivery_loop(
    store: WebhookStore,
    stop: asyncio.Event,
    *,
    concurrency: int = 16,
    poll_s: float = 0.5,
    timeout_s: float = 10.0,
) -> None:
    """Deliver due webhooks until ``stop`` is set: one loop per process, up to ``concurrency`` at once."""
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        while not stop.is_set():
            try:
                batch = await store.claim_due(concurrency)
                if batch:
                    owners = sorted({d.owner for d in batch})
                    keys = dict(zip(owners, await asyncio.gather(*(store.secret(o) for o in owners)), strict=True))
                    by_job: dict[str, list[Delivery]] = {}
                    for d in sorted(batch, key=_event_order):
                        by_job.setdefault(d.job_id, []).append(d)
                    await asyncio.gather(*(_deliver_in_order(store, client, ds, keys) for ds in by_job.values()))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: keep trying, never die silently
                log.warning("webhook delivery loop: %s; retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)


def _event_order(delivery: Delivery) -> tuple[str, int, int]:
    """A job's events in the order they happened (the id ends in the event's stream id ``ms-seq``)."""
    ms, _, seq = delivery.event_id.rpartition("_")[2].partition("-")
    return delivery.job_id, int(ms) if ms.isdigit() else 0, int(seq) if seq.isdigit() else 0


async def _deliver_in_order(
    store: WebhookStore, client: httpx.AsyncClient, deliveries: list[Delivery], secrets: dict[str, str]
) -> None:
    """One job's due events one after another, jobs side by side."""
    for delivery in deliveries:
        await _deliver(store, client, delivery, secrets[delivery.owner])


async def _deliver(store: WebhookStore, client: httpx.AsyncClient, delivery: Delivery, secret: str) -> None:
    ok, error = await store.attempt(client, delivery, secret)
    outcome = await store.record(delivery, ok, error)
    if outcome == 3:
        log.warning(
            "webhook %s to %s dead-lettered after %s attempts: %s",
            delivery.event_id,
            delivery.url,
            delivery.attempts + 1,
            error,
        )
    elif not ok:
        log.info("webhook %s attempt %s failed: %s", delivery.event_id, delivery.attempts + 1, error)
