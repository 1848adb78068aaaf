"""Estimated time to completion of a job, from the throughput measured on its kind.

The basis (stated in the service READMEs too): every job that succeeds records
how long its attempt ran divided by its size (seconds of audio it produces or
reads; a job of unknown size counts as one unit), and the queue keeps moving
averages per kind of these seconds-per-unit (``spu``) and of the job size.
Jobs of a kind run side by side (batched or on several workers); the number
delivered and not yet finished (``running``) is how many run at once. Then:

* a queued job at position ``p`` waits for ``p`` jobs of mean size, shared by
  the ``running`` slots, plus on average half a job for the first slot to free
  up, and then runs for its own size: ``(p * mean * spu) / running + 0.5 * mean * spu
  + size * spu`` (a job waiting out a retry backoff adds the time until its retry);
* a running job with progress ``f`` needs ``elapsed * (1 - f) / f`` more, or,
  before any progress, its expected run time less the time already spent.

It is an estimate: it assumes the recent jobs are like the coming ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from beatflow.common.jobs.model import JobRecord, JobState


@dataclass(frozen=True)
class KindStats:
    spu: float  # seconds of work per unit of size, moving average
    mean_size: float  # mean job size (units), moving average
    samples: int  # jobs measured so far
    running: int  # jobs taken by workers and not finished
    waiting: int  # jobs waiting in the stream


def estimate(record: JobRecord, stats: KindStats, now: float) -> tuple[float, str]:
    """(seconds until ``record`` finishes, how it was computed); (-1, why) when unknown."""
    if record.state.terminal:
        return 0.0, "finished"
    if stats.samples <= 0 or stats.spu <= 0:
        return -1.0, f"no finished {record.kind} job measured yet"
    size = record.size_s if record.size_s > 0 else (stats.mean_size if stats.mean_size > 0 else 1.0)
    own = size * stats.spu
    if record.state == JobState.RUNNING:
        elapsed = max(0.0, now - record.started_at) if record.started_at else 0.0
        if record.progress >= 0.05 and elapsed > 0:
            return elapsed * (1 - record.progress) / record.progress, (
                f"running {elapsed:.1f} s at progress {record.progress:.2f}"
            )
        return max(0.0, own - elapsed), f"{size:.1f} units x {stats.spu:.3f} s/unit, {elapsed:.1f} s spent"
    slots = max(1, stats.running)
    ahead = record.queue_position if record.queue_position >= 0 else stats.waiting
    backoff = max(0.0, record.retry_at - now) if record.retry_at else 0.0
    first_free = 0.5 * stats.mean_size * stats.spu if stats.running > 0 else 0.0
    eta = backoff + ahead * stats.mean_size * stats.spu / slots + first_free + own
    basis = (
        f"{ahead} ahead x {stats.mean_size:.1f} units x {stats.spu:.3f} s/unit over {slots} running "
        f"(moving average of {stats.samples} finished {record.kind} jobs) + own {size:.1f} units"
    )
    if backoff:
        basis += f" + {backoff:.1f} s retry backoff"
    return eta, basis
