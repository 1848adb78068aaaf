"""The retry delay every job-side retry loop uses (claims, job-state writes, output registration)."""

from __future__ import annotations

import random

BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 5.0


def backoff_s(failures: int, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """Delay before retry number ``failures`` (1, 2, ...): exponential, capped, with jitter.

    A random point in [d/2, d] for d = min(cap, base * 2**(failures-1)), so replicas
    that lost Redis together do not come back in lockstep.
    """
    d = min(cap_s, base_s * 2 ** min(max(failures - 1, 0), 30))
    return float(d / 2 + random.random() * d / 2)
