from beatflow.v1 import jobs_pb2 as _jobs_pb2
from beatflow.v1 import generator_pb2 as _generator_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SeparateRequest(_message.Message):
    __slots__ = ("audio_blob", "model", "two_stems", "shifts", "overlap", "segment_s", "format", "residual_stem", "idempotency_key", "owner", "seed", "job_options")
    AUDIO_BLOB_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TWO_STEMS_FIELD_NUMBER: _ClassVar[int]
    SHIFTS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_S_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_STEM_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    JOB_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio_blob: str
    model: str
    two_stems: str
    shifts: int
    overlap: float
    segment_s: float
    format: _generator_pb2.AudioFormat
    residual_stem: str
    idempotency_key: str
    owner: str
    seed: int
    job_options: _jobs_pb2.JobOptions
    def __init__(self, audio_blob: _Optional[str] = ..., model: _Optional[str] = ..., two_stems: _Optional[str] = ..., shifts: _Optional[int] = ..., overlap: _Optional[float] = ..., segment_s: _Optional[float] = ..., format: _Optional[_Union[_generator_pb2.AudioFormat, str]] = ..., residual_stem: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., owner: _Optional[str] = ..., seed: _Optional[int] = ..., job_options: _Optional[_Union[_jobs_pb2.JobOptions, _Mapping]] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("audio_blob", "idempotency_key", "owner", "job_options")
    AUDIO_BLOB_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    JOB_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio_blob: str
    idempotency_key: str
    owner: str
    job_options: _jobs_pb2.JobOptions
    def __init__(self, audio_blob: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., owner: _Optional[str] = ..., job_options: _Optional[_Union[_jobs_pb2.JobOptions, _Mapping]] = ...) -> None: ...

class Analysis(_message.Message):
    __slots__ = ("bpm", "bpm_confidence", "key_tonic", "key_mode", "key_confidence", "duration_s", "sample_rate", "channels", "loudness_lufs", "peak_dbfs", "beat_times_s", "downbeat_times_s")
    BPM_FIELD_NUMBER: _ClassVar[int]
    BPM_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    KEY_TONIC_FIELD_NUMBER: _ClassVar[int]
    KEY_MODE_FIELD_NUMBER: _ClassVar[int]
    KEY_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_LUFS_FIELD_NUMBER: _ClassVar[int]
    PEAK_DBFS_FIELD_NUMBER: _ClassVar[int]
    BEAT_TIMES_S_FIELD_NUMBER: _ClassVar[int]
    DOWNBEAT_TIMES_S_FIELD_NUMBER: _ClassVar[int]
    bpm: float
    bpm_confidence: float
    key_tonic: str
    key_mode: str
    key_confidence: float
    duration_s: float
    sample_rate: int
    channels: int
    loudness_lufs: float
    peak_dbfs: float
    beat_times_s: _containers.RepeatedScalarFieldContainer[float]
    downbeat_times_s: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, bpm: _Optional[float] = ..., bpm_confidence: _Optional[float] = ..., key_tonic: _Optional[str] = ..., key_mode: _Optional[str] = ..., key_confidence: _Optional[float] = ..., duration_s: _Optional[float] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., loudness_lufs: _Optional[float] = ..., peak_dbfs: _Optional[float] = ..., beat_times_s: _Optional[_Iterable[float]] = ..., downbeat_times_s: _Optional[_Iterable[float]] = ...) -> None: ...

class StemPair(_message.Message):
    __slots__ = ("name", "from_blob", "to_blob")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_BLOB_FIELD_NUMBER: _ClassVar[int]
    TO_BLOB_FIELD_NUMBER: _ClassVar[int]
    name: str
    from_blob: str
    to_blob: str
    def __init__(self, name: _Optional[str] = ..., from_blob: _Optional[str] = ..., to_blob: _Optional[str] = ...) -> None: ...

class AudioDiffRequest(_message.Message):
    __slots__ = ("stems", "idempotency_key", "owner")
    STEMS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    stems: _containers.RepeatedCompositeFieldContainer[StemPair]
    idempotency_key: str
    owner: str
    def __init__(self, stems: _Optional[_Iterable[_Union[StemPair, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...
