from beatflow.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_MP3: _ClassVar[AudioFormat]
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat
AUDIO_FORMAT_MP3: AudioFormat

class MusicHints(_message.Message):
    __slots__ = ("bpm", "mood", "genre", "key", "instruments")
    BPM_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENTS_FIELD_NUMBER: _ClassVar[int]
    bpm: float
    mood: str
    genre: str
    key: str
    instruments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, bpm: _Optional[float] = ..., mood: _Optional[str] = ..., genre: _Optional[str] = ..., key: _Optional[str] = ..., instruments: _Optional[_Iterable[str]] = ...) -> None: ...

class SamplingOptions(_message.Message):
    __slots__ = ("top_k", "top_p", "temperature", "guidance_scale", "greedy")
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    GREEDY_FIELD_NUMBER: _ClassVar[int]
    top_k: int
    top_p: float
    temperature: float
    guidance_scale: float
    greedy: bool
    def __init__(self, top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., temperature: _Optional[float] = ..., guidance_scale: _Optional[float] = ..., greedy: _Optional[bool] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "hints", "duration_s", "seed", "sampling", "num_variations", "format", "melody_blob", "prompt_audio_blob", "idempotency_key", "owner", "job_options", "conform", "loop")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    NUM_VARIATIONS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MELODY_BLOB_FIELD_NUMBER: _ClassVar[int]
    PROMPT_AUDIO_BLOB_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    JOB_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONFORM_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    hints: MusicHints
    duration_s: float
    seed: int
    sampling: SamplingOptions
    num_variations: int
    format: AudioFormat
    melody_blob: str
    prompt_audio_blob: str
    idempotency_key: str
    owner: str
    job_options: _jobs_pb2.JobOptions
    conform: bool
    loop: bool
    def __init__(self, prompt: _Optional[str] = ..., hints: _Optional[_Union[MusicHints, _Mapping]] = ..., duration_s: _Optional[float] = ..., seed: _Optional[int] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ..., num_variations: _Optional[int] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., melody_blob: _Optional[str] = ..., prompt_audio_blob: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., owner: _Optional[str] = ..., job_options: _Optional[_Union[_jobs_pb2.JobOptions, _Mapping]] = ..., conform: _Optional[bool] = ..., loop: _Optional[bool] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("spec", "device", "dtype", "sample_rate", "channels", "frame_rate", "supports_melody", "max_duration_s", "max_batch", "melody_spec", "backend", "window_s", "max_variations", "max_prompt_chars", "num_codebooks", "max_wait_ms", "backend_reason")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_MELODY_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MELODY_SPEC_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    MAX_VARIATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    NUM_CODEBOOKS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_REASON_FIELD_NUMBER: _ClassVar[int]
    spec: str
    device: str
    dtype: str
    sample_rate: int
    channels: int
    frame_rate: float
    supports_melody: bool
    max_duration_s: float
    max_batch: int
    melody_spec: str
    backend: str
    window_s: float
    max_variations: int
    max_prompt_chars: int
    num_codebooks: int
    max_wait_ms: int
    backend_reason: str
    def __init__(self, spec: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., frame_rate: _Optional[float] = ..., supports_melody: _Optional[bool] = ..., max_duration_s: _Optional[float] = ..., max_batch: _Optional[int] = ..., melody_spec: _Optional[str] = ..., backend: _Optional[str] = ..., window_s: _Optional[float] = ..., max_variations: _Optional[int] = ..., max_prompt_chars: _Optional[int] = ..., num_codebooks: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., backend_reason: _Optional[str] = ...) -> None: ...
