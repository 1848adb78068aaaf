"""A generation request as the service understands it, and its validation.

The servicer turns the protobuf into a :class:`GenerationSpec`; ``validate``
checks it against :class:`Limits` before anything is queued, and the spec
travels through the job queue as JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from beatflow.common.errors import InvalidArgument
from beatflow.generator.conform import parse_key
from beatflow.generator.decoders import Sampling
from beatflow.generator.prompts import Hints, describe

FORMATS = ("wav", "flac", "mp3")
MAX_TOP_K = 2048


@dataclass(frozen=True)
class Limits:
    max_duration_s: float = 300.0
    default_duration_s: float = 10.0
    max_prompt_chars: int = 2000
    max_variations: int = 4
    max_upload_bytes: int = 64 * 1024 * 1024
    max_upload_s: float = 300.0
    max_prompt_audio_s: float = 20.0
    min_melody_s: float = 1.0
    silence_db: float = -60.0


@dataclass(frozen=True)
class GenerationSpec:
    prompt: str = ""
    hints: Hints = field(default_factory=Hints)
    duration_s: float = 0.0  # 0: the default duration
    seed: int | None = None  # None: drawn at submit time and recorded
    sampling: Sampling = field(default_factory=Sampling)
    guidance_scale: float = 3.0
    num_variations: int = 1
    format: str = "wav"
    melody_blob: str = ""
    prompt_audio_blob: str = ""
    owner: str = ""
    conform: bool | None = None  # None: on when a bpm or key hint is given
    loop: bool = False

    @property
    def conforms(self) -> bool:
        """Whether results are conformed to the bpm/key hints (the ``conform`` default resolved)."""
        if self.conform is not None:
            return self.conform
        return bool(self.hints.bpm) or bool(self.hints.key.strip())

    @property
    def description(self) -> str:
        return describe(self.prompt, self.hints)

    @property
    def kind(self) -> str:
        if self.melody_blob and self.prompt_audio_blob:
            return "melody+continuation"
        if self.melody_blob:
            return "hum-to-beat"
        if self.prompt_audio_blob:
            return "continuation"
        return "text-to-music"

    def seeds(self) -> list[int]:
        base = self.seed if self.seed is not None else 0
        return [base + i for i in range(self.num_variations)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hints"] = self.hints.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSpec:
        hints = data.get("hints") or {}
        sampling = data.get("sampling") or {}
        return cls(
            prompt=str(data.get("prompt", "")),
            hints=Hints(
                bpm=hints.get("bpm"),
                mood=str(hints.get("mood", "")),
                genre=str(hints.get("genre", "")),
                key=str(hints.get("key", "")),
                instruments=tuple(str(i) for i in hints.get("instruments", ())),
            ),
            duration_s=float(data.get("duration_s", 0.0)),
            seed=None if data.get("seed") is None else int(data["seed"]),
            sampling=Sampling(
                top_k=int(sampling.get("top_k", 250)),
                top_p=float(sampling.get("top_p", 0.0)),
                temperature=float(sampling.get("temperature", 1.0)),
                greedy=bool(sampling.get("greedy", False)),
            ),
            guidance_scale=float(data.get("guidance_scale", 3.0)),
            num_variations=int(data.get("num_variations", 1)),
            format=str(data.get("format", "wav")),
            melody_blob=str(data.get("melody_blob", "")),
            prompt_audio_blob=str(data.get("prompt_audio_blob", "")),
            owner=str(data.get("owner", "")),
            conform=None if data.get("conform") is None else bool(data["conform"]),
            loop=bool(data.get("loop", False)),
        )


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value}")
    return value


def _check_key(name: str, key: str) -> None:
    if key and (len(key) != 64 or any(c not in "0123456789abcdef" for c in key)):
        raise InvalidArgument(f"{name} must be a blob key (64 lowercase hex characters)")


def validate(spec: GenerationSpec, limits: Limits) -> GenerationSpec:
    """Check every field; return the spec with defaults filled in (duration, seed). Raises InvalidArgument."""
    prompt = spec.prompt.strip()
    if len(spec.prompt) > limits.max_prompt_chars:
        raise InvalidArgument(f"prompt is {len(spec.prompt)} characters; the limit is {limits.max_prompt_chars}")
    for name in ("mood", "genre", "key"):
        if len(getattr(spec.hints, name)) > 200:
            raise InvalidArgument(f"hint {name} is longer than 200 characters")
    if len(spec.hints.instruments) > 20 or any(len(i) > 100 for i in spec.hints.instruments):
        raise InvalidArgument("at most 20 instruments of at most 100 characters each")
    if spec.hints.bpm is not None:
        bpm = _finite("bpm", float(spec.hints.bpm))
        if bpm != 0 and not 20 <= bpm <= 400:
            raise InvalidArgument(f"bpm must be between 20 and 400, got {bpm:g}")
    if not prompt and not spec.description and not spec.melody_blob and not spec.prompt_audio_blob:
        raise InvalidArgument("prompt is empty: give a text prompt or hints, a melody or an audio prompt")
    duration = _finite("duration_s", spec.duration_s) or limits.default_duration_s
    if duration < 0:
        raise InvalidArgument(f"duration_s must be positive, got {duration:g}")
    if duration < 0.1:
        raise InvalidArgument(f"duration_s must be at least 0.1 s, got {duration:g}")
    if duration > limits.max_duration_s:
        raise InvalidArgument(f"duration_s {duration:g} is over the limit of {limits.max_duration_s:g} s")
    variations = spec.num_variations or 1
    if not 1 <= variations <= limits.max_variations:
        raise InvalidArgument(f"num_variations must be 1..{limits.max_variations}, got {spec.num_variations}")
    s = spec.sampling
    if not 0 <= s.top_k <= MAX_TOP_K:
        raise InvalidArgument(f"top_k must be 0..{MAX_TOP_K} (0 disables it), got {s.top_k}")
    if not 0.0 <= _finite("top_p", s.top_p) <= 1.0:
        raise InvalidArgument(f"top_p must be 0..1 (0 disables it), got {s.top_p:g}")
    if not s.greedy and not 0.01 <= _finite("temperature", s.temperature) <= 10.0:
        raise InvalidArgument(f"temperature must be 0.01..10, got {s.temperature:g}")
    if not 0.0 <= _finite("guidance_scale", spec.guidance_scale) <= 30.0:
        raise InvalidArgument(f"guidance_scale must be 0..30 (<= 1 disables guidance), got {spec.guidance_scale:g}")
    if spec.format not in FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(FORMATS)}")
    _check_key("melody_blob", spec.melody_blob)
    _check_key("prompt_audio_blob", spec.prompt_audio_blob)
    if spec.conform and spec.hints.key.strip() and parse_key(spec.hints.key) is None:
        raise InvalidArgument(
            f"conform: key {spec.hints.key!r} is not a key (e.g. 'A minor', 'F# major', 'Bbm'); "
            "give one or set conform to false"
        )
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    if not -(2**63) <= seed < 2**63 - limits.max_variations:
        raise InvalidArgument("seed is out of range")
    return replace(spec, prompt=prompt, duration_s=float(duration), num_variations=variations, seed=seed)
