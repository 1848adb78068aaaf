"""Plain data the engine accepts and hands back: requests, sampling settings, chunks, results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its tokens.

    ``greedy`` takes the arg-max of the guided logits (temperature, top-k and top-p are then
    ignored). ``top_k`` 0 and ``top_p`` 0 or 1 mean "off". ``guidance_scale`` <= 1 turns
    classifier-free guidance off for the request (its unconditional row is computed and ignored).
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    guidance_scale: float = 3.0

    def validate(self) -> None:
        if self.temperature <= 0 and not self.greedy:
            raise ValueError("temperature must be > 0 when sampling")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError("top_p must be within [0, 1]")


@dataclass(frozen=True)
class AudioChunk:
    """A run of decoded samples of one request, in order; all chunks concatenate to the final audio."""

    request_id: str
    index: int
    start_sample: int
    samples: np.ndarray  # float32 (channels, n)
    sample_rate: int
    final: bool


@dataclass
class EngineResult:
    """A finished request: its audio codes (codebooks, frames) and the decoded audio (channels, samples)."""

    request_id: str
    codes: torch.Tensor
    audio: np.ndarray
    sample_rate: int
    steps: int
    cancelled: bool = False
    seed: int | None = None
    batch_size: int = 1  # the most requests decoded beside it (itself included) at any step


ProgressFn = Callable[[int, int], None]
ChunkFn = Callable[[AudioChunk], None]
CancelFn = Callable[[], bool]
FramesFn = Callable[[int, torch.Tensor], None]


@dataclass
class EngineRequest:
    """One generation: conditioning, length, sampling, seed and the callbacks it reports through.

    Conditioning: ``text`` (tokenized with the engine's tokenizer) or ``input_ids``/``attention_mask``;
    ``melody_chroma`` (frames, num_chroma) for melody models; ``prompt_audio`` (channels, samples) at the
    codec's sample rate or ``prompt_codes`` (codebooks, frames) to continue. ``max_new_tokens`` decode
    steps are run (``frames + codebook delay - 1`` steps give ``frames`` new audio frames).

    Callbacks run on the engine's thread between steps: ``on_progress(steps_done, steps_total)`` after
    every step, ``on_chunk`` with decoded audio about every ``chunk_seconds``, ``on_frames`` with
    finished codec frames (the prompt's included) about every ``frames_every`` frames, and
    ``is_cancelled`` is polled before every step.
    """

    max_new_tokens: int
    text: str | None = None
    input_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    melody_chroma: torch.Tensor | None = None
    prompt_audio: torch.Tensor | None = None
    prompt_codes: torch.Tensor | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int | None = None
    request_id: str = ""
    on_progress: ProgressFn | None = None
    on_chunk: ChunkFn | None = None
    chunk_seconds: float = 1.0
    is_cancelled: CancelFn | None = None
    on_frames: FramesFn | None = None  # (start_frame, codes (codebooks, n)): finished frames, in order
    frames_every: int = 25
    decode_audio: bool = True
