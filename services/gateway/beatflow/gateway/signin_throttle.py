"""Sign-in throttling: failed attempts counted per account and per client address, in Redis.

Every gateway replica shares the counters, so spreading guesses over replicas
gains nothing. A counter starts with the first failure and lasts ``window_s``;
once it reaches its limit, sign-ins for that account (or from that address) are
answered 429 with ``Retry-After`` (the seconds the counter has left), before any
password is checked, until the window ends. A successful sign-in clears the
account's counter, not the address's. When Redis is unreachable, sign-in is
refused with a 503 rather than left unthrottled.
"""

from __future__ import annotations

import hashlib
import math

import redis.asyncio as aioredis

from beatflow.gateway.httperrors import ApiError

# Count a failure on each key; a key's window starts at its first failure.
_COUNT = """
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
  end
end
return 1
"""


class SigninThrottle:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_per_account: int = 5,
        max_per_address: int = 20,
        window_s: float = 300.0,
        prefix: str = "bf:signin",
    ) -> None:
        if max_per_account < 1 or max_per_address < 1 or window_s <= 0:
            raise ValueError("throttle limits and window must be positive")
        self.redis = redis
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.window_ms = max(1, int(window_s * 1000))
        self.prefix = prefix
        self._count = redis.register_script(_COUNT)

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        return f"{self.prefix}:account:{account}", f"{self.prefix}:addr:{address or 'unknown'}"

    async def check(self, username: str, address: str) -> None:
        """Raise a 429 when the account or the address has used up its failures."""
        account_key, address_key = self._keys(username, address)
        pipe = self.redis.pipeline(transaction=False)
        for key in (account_key, address_key):
            pipe.get(key)
            pipe.pttl(key)
        account_n, account_ttl, address_n, address_ttl = await pipe.execute()
        waits = []
        if account_n is not None and int(account_n) >= self.max_per_account:
            waits.append(("this account", int(account_ttl)))
        if address_n is not None and int(address_n) >= self.max_per_address:
            waits.append(("this address", int(address_ttl)))
        if waits:
            who, ttl_ms = max(waits, key=lambda w: w[1])
            retry_s = max(1, math.ceil((ttl_ms if ttl_ms > 0 else self.window_ms) / 1000))
            raise ApiError(
                429,
                f"too many failed sign-ins for {who}; try again in {retry_s} s",
                headers={"Retry-After": str(retry_s)},
                retry_after_s=retry_s,
            )

    async def failed(self, username: str, address: str) -> None:
        """Count a failed attempt against the account and the address."""
        await self._count(keys=list(self._keys(username, address)), args=[self.window_ms])

    async def succeeded(self, username: str) -> None:
        await self.redis.delete(self._keys(username, "")[0])
