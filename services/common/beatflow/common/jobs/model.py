"""Job records and events as Python values, and their protobuf form.

Redis stores every field as a string; the ``from_redis`` constructors accept
both ``bytes`` and ``str`` so the queue works with any client decoding setting.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, cast

from beatflow.v1 import jobs_pb2


class JobState(enum.IntEnum):
    """Mirrors ``beatflow.v1.JobState``; stored in Redis by name."""

    UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    DEAD = 6

    @property
    def terminal(self) -> bool:
        """A job in a terminal state never changes again."""
        return self in _TERMINAL

    def to_proto(self) -> jobs_pb2.JobState:
        return cast(jobs_pb2.JobState, jobs_pb2.JobState.Value(f"JOB_STATE_{self.name}"))

    @classmethod
    def parse(cls, value: Any) -> JobState:
        return _STATE_BY_NAME.get(value if isinstance(value, str) else as_str(value), cls.UNSPECIFIED)


class JobKind(enum.StrEnum):
    """The kinds of job, one per queue: the one definition producers and readers share.

    ``generate`` covers text-to-music, continuation and hum-to-beat (melody-conditioned)
    alike; the outputs of a ``generate`` job are named ``audio``, ``audio.1``, ...
    """

    GENERATE = "generate"
    SEPARATE = "separate"
    ANALYZE = "analyze"
    DIFF = "diff"  # perceptual audio diff of stem pairs (separator); its result is JSON, no audio

    @property
    def produces_audio_mix(self) -> bool:
        """Outputs are whole mixes (not stems), and the result is a generation record."""
        return self is JobKind.GENERATE


_STATE_BY_NAME = {state.name: state for state in JobState}
_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.DEAD})
TERMINAL_NAMES = frozenset(s.name for s in _TERMINAL)


class JobCancelled(Exception):
    """Raised inside a handler (by ``ClaimedJob.check_cancelled``) when its job was cancelled."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


def as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _float(value: Any) -> float:
    text = as_str(value)
    return float(text) if text else 0.0


def _json_dict(value: Any) -> dict[str, Any]:
    text = as_str(value)
    if not text:
        return {}
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}


# The fields of a decoded hash (``decode_mapping``: text already), read on every task poll.


def _number(text: str | None) -> float:
    return float(text) if text else 0.0


def _object(text: str | None) -> dict[str, Any]:
    loaded = json.loads(text) if text else None
    return loaded if isinstance(loaded, dict) else {}


def decode_mapping(raw: Any) -> dict[str, str]:
    """A Redis hash or stream entry (dict or flat list, bytes or str) as ``dict[str, str]``."""
    if isinstance(raw, dict):
        return {as_str(k): as_str(v) for k, v in raw.items()}
    items = raw if isinstance(raw, list) else list(raw or [])
    # the usual reply, all bytes: decoded without a call per item (every task poll reads one);
    # an odd last item is dropped, as below
    try:
        return {k.decode(): v.decode() for k, v in zip(items[0::2], items[1::2], strict=False)}
    except AttributeError:  # str (decode_responses) or numbers among them
        return {as_str(items[i]): as_str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


@dataclass
class JobRecord:
    id: str
    kind: str
    state: JobState
    progress: float = 0.0
    stage: str = ""
    error: str = ""
    attempts: int = 0
    owner: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    result_blobs: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    queue_position: int = 0
    cancel_requested: bool = False
    deadline_at: float = 0.0
    cancel_reason: str = ""
    retry_at: float = 0.0
    retry_delay_s: float = 0.0
    max_attempts: int = 0
    eta_s: float = -1.0  # negative: unknown (nothing measured yet)
    eta_basis: str = ""
    size_s: float = 0.0
    webhook_url: str = ""
    webhook_events: list[str] = field(default_factory=list)

    @classmethod
    def from_redis(cls, raw: Any) -> JobRecord:
        h = decode_mapping(raw)
        get = h.get
        return cls(
            id=get("id", ""),
            kind=get("kind", ""),
            state=_STATE_BY_NAME.get(get("state", ""), JobState.UNSPECIFIED),
            progress=_number(get("progress")),
            stage=get("stage", ""),
            error=get("error", ""),
            attempts=int(get("attempts") or 0),
            owner=get("owner", ""),
            request=_object(get("request")),
            result_blobs={k: str(v) for k, v in _object(get("result_blobs")).items()},
            result=_object(get("result")),
            created_at=_number(get("created_at")),
            started_at=_number(get("started_at")),
            finished_at=_number(get("finished_at")),
            cancel_requested=get("cancel") == "1",
            deadline_at=_number(get("deadline_at")),
            cancel_reason=get("cancel_reason", ""),
            retry_at=_number(get("retry_at")),
            retry_delay_s=_number(get("retry_delay_s")),
            size_s=_number(get("size_s")),
            webhook_url=get("webhook_url", ""),
            webhook_events=[e for e in get("webhook_events", "").split(",") if e],
        )

    def to_proto(self) -> jobs_pb2.Job:
        return jobs_pb2.Job(
            id=self.id,
            kind=self.kind,
            state=self.state.to_proto(),
            progress=self.progress,
            stage=self.stage,
            queue_position=self.queue_position,
            error=self.error,
            result_blobs=self.result_blobs,
            result_json=json.dumps(self.result),
            attempts=self.attempts,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            owner=self.owner,
            request_json=json.dumps(self.request),
            deadline_at=self.deadline_at,
            cancel_reason=self.cancel_reason,
            retry_at=self.retry_at,
            retry_delay_s=self.retry_delay_s,
            max_attempts=self.max_attempts,
            eta_s=self.eta_s,
            eta_basis=self.eta_basis,
            size_s=self.size_s,
            webhook_url=self.webhook_url,
            webhook_events=self.webhook_events,
        )


@dataclass
class JobEvent:
    event_id: str
    job_id: str
    state: JobState
    progress: float = 0.0
    stage: str = ""
    error: str = ""
    result_blobs: dict[str, str] = field(default_factory=dict)
    chunk_blob: str = ""
    timestamp: float = 0.0
    # the job's live figures when the event is sent (see JobQueue.events)
    queue_position: int = 0
    eta_s: float = -1.0
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    @classmethod
    def from_entry(cls, job_id: str, event_id: Any, raw: Any) -> JobEvent:
        f = decode_mapping(raw)
        return cls(
            event_id=as_str(event_id),
            job_id=job_id,
            state=JobState.parse(f.get("state")),
            progress=_float(f.get("progress")),
            stage=f.get("stage", ""),
            error=f.get("error", ""),
            result_blobs={k: str(v) for k, v in _json_dict(f.get("result_blobs")).items()},
            chunk_blob=f.get("chunk_blob", ""),
            timestamp=_float(f.get("ts")),
        )

    def to_proto(self) -> jobs_pb2.JobEvent:
        return jobs_pb2.JobEvent(
            event_id=self.event_id,
            job_id=self.job_id,
            state=self.state.to_proto(),
            progress=self.progress,
            stage=self.stage,
            error=self.error,
            result_blobs=self.result_blobs,
            chunk_blob=self.chunk_blob,
            timestamp=self.timestamp,
            queue_position=self.queue_position,
            eta_s=self.eta_s,
            attempts=self.attempts,
            retry_at=self.retry_at,
        )
