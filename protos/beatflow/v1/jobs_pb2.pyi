from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_DEAD: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_DEAD: JobState

class Job(_message.Message):
    __slots__ = ("id", "kind", "state", "progress", "stage", "queue_position", "error", "result_blobs", "result_json", "attempts", "created_at", "started_at", "finished_at", "owner", "request_json", "deadline_at", "cancel_reason", "retry_at", "retry_delay_s", "max_attempts", "eta_s", "eta_basis", "size_s", "webhook_url", "webhook_events")
    class ResultBlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_BLOBS_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    ETA_BASIS_FIELD_NUMBER: _ClassVar[int]
    SIZE_S_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    state: JobState
    progress: float
    stage: str
    queue_position: int
    error: str
    result_blobs: _containers.ScalarMap[str, str]
    result_json: str
    attempts: int
    created_at: float
    started_at: float
    finished_at: float
    owner: str
    request_json: str
    deadline_at: float
    cancel_reason: str
    retry_at: float
    retry_delay_s: float
    max_attempts: int
    eta_s: float
    eta_basis: str
    size_s: float
    webhook_url: str
    webhook_events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., stage: _Optional[str] = ..., queue_position: _Optional[int] = ..., error: _Optional[str] = ..., result_blobs: _Optional[_Mapping[str, str]] = ..., result_json: _Optional[str] = ..., attempts: _Optional[int] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., owner: _Optional[str] = ..., request_json: _Optional[str] = ..., deadline_at: _Optional[float] = ..., cancel_reason: _Optional[str] = ..., retry_at: _Optional[float] = ..., retry_delay_s: _Optional[float] = ..., max_attempts: _Optional[int] = ..., eta_s: _Optional[float] = ..., eta_basis: _Optional[str] = ..., size_s: _Optional[float] = ..., webhook_url: _Optional[str] = ..., webhook_events: _Optional[_Iterable[str]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("event_id", "job_id", "state", "progress", "stage", "error", "result_blobs", "chunk_blob", "timestamp", "queue_position", "eta_s", "attempts", "retry_at")
    class ResultBlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_BLOBS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BLOB_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    job_id: str
    state: JobState
    progress: float
    stage: str
    error: str
    result_blobs: _containers.ScalarMap[str, str]
    chunk_blob: str
    timestamp: float
    queue_position: int
    eta_s: float
    attempts: int
    retry_at: float
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., stage: _Optional[str] = ..., error: _Optional[str] = ..., result_blobs: _Optional[_Mapping[str, str]] = ..., chunk_blob: _Optional[str] = ..., timestamp: _Optional[float] = ..., queue_position: _Optional[int] = ..., eta_s: _Optional[float] = ..., attempts: _Optional[int] = ..., retry_at: _Optional[float] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_event_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_event_id: str
    def __init__(self, job_id: _Optional[str] = ..., after_event_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobOptions(_message.Message):
    __slots__ = ("deadline_s", "webhook_url", "webhook_events")
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FIELD_NUMBER: _ClassVar[int]
    deadline_s: float
    webhook_url: str
    webhook_events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deadline_s: _Optional[float] = ..., webhook_url: _Optional[str] = ..., webhook_events: _Optional[_Iterable[str]] = ...) -> None: ...

class WebhookSecretRequest(_message.Message):
    __slots__ = ("owner", "rotate")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    rotate: bool
    def __init__(self, owner: _Optional[str] = ..., rotate: _Optional[bool] = ...) -> None: ...

class WebhookSecret(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class ListWebhookDeadLettersRequest(_message.Message):
    __slots__ = ("owner", "limit")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    owner: str
    limit: int
    def __init__(self, owner: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("event_id", "owner", "job_id", "type", "url", "attempts", "last_error", "created_at", "next_attempt_at", "status")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    owner: str
    job_id: str
    type: str
    url: str
    attempts: int
    last_error: str
    created_at: float
    next_attempt_at: float
    status: str
    def __init__(self, event_id: _Optional[str] = ..., owner: _Optional[str] = ..., job_id: _Optional[str] = ..., type: _Optional[str] = ..., url: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[float] = ..., next_attempt_at: _Optional[float] = ..., status: _Optional[str] = ...) -> None: ...

class WebhookDeliveryList(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("owner", "event_id")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    owner: str
    event_id: str
    def __init__(self, owner: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...
