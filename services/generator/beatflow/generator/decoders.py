"""The decoder interface: what the service asks of a MusicGen decode loop, and what it gets back.

A *decoder* here turns :class:`DecodeRequest` s (text, optional melody chroma or
prompt codes, length, seed, sampling) into codec codes by running the model's
autoregressive loop. (Not the codec's decoder, which turns codes into audio:
``codec_audio.py``; nor the engine's step module, ``engine/decoder.py``.) It
knows nothing about jobs, blobs or windows: the service plans windows, folds
hints into the text, decodes codes to audio and reports progress.

Two implementations exist, chosen by ``BEATFLOW_GENERATOR_BACKEND``
(``decoder_choice.py``):

* ``generate``: :class:`~beatflow.generator.hf_generate.GenerateDecoder`, static
  batches through ``transformers``' ``model.generate()``.
* ``engine``: :class:`~beatflow.generator.engine_decoder.EngineDecoder`, the
  decode engine (``engine/``) with continuous batching.

Contract for implementers:

* ``decode`` is called from a worker thread (never the event loop) and
  blocks until every request is finished or cancelled. Decoders with
  ``continuous = True`` must accept concurrent ``decode`` calls from several
  threads (their requests join the running batch); others are called one at
  a time.
* ``on_step(request_id, steps_done, steps_total)`` after every decoder step
  of that request (``steps_total = new_frames + delay``).
* ``is_cancelled(request_id)`` is polled at least every few steps; a
  cancelled request stops (its result has ``cancelled=True``, ``codes=None``)
  and the others go on. If every request of a call is cancelled the call
  returns early.
* ``on_frames(request_id, start_frame, codes)`` (optional) streams finished
  frames ``(num_codebooks, n)`` as they complete, in order.
* Same request and seed -> the same codes, run to run; ``greedy`` is argmax.
* ``name`` is the backend name that selects it (``generate`` or ``engine``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

ProgressFn = Callable[[str, int, int], None]
CancelFn = Callable[[str], bool]
FramesFn = Callable[[str, int, torch.Tensor], None]


@dataclass(frozen=True)
class Sampling:
    """Per-request sampling settings (MusicGen defaults: top-k 250, temperature 1)."""

    top_k: int = 250  # 0 disables
    top_p: float = 0.0  # 0 disables; otherwise nucleus sampling
    temperature: float = 1.0
    greedy: bool = False  # argmax decoding (tests, engine equality checks)


@dataclass
class DecodeRequest:
    """One sequence to decode with the loaded model."""

    request_id: str
    description: str  # text condition; "" is allowed (unconditional text)
    new_frames: int  # codec frames to produce after the prompt
    seed: int
    sampling: Sampling = field(default_factory=Sampling)
    guidance_scale: float = 3.0  # classifier-free guidance; <= 1 disables it
    prompt_codes: torch.Tensor | None = None  # (num_codebooks, P) long: continue these frames
    chroma: torch.Tensor | None = None  # (chroma_frames, 12) one-hot: melody models only


@dataclass
class DecodeResult:
    request_id: str
    codes: torch.Tensor | None  # (num_codebooks, new_frames) long on the CPU; None when cancelled
    steps: int  # decoder steps run for this request
    batch_size: int  # requests decoded together with it (the most at any step)
    cancelled: bool = False


class DecodeCancelled(Exception):
    """Every request of a decode call was cancelled."""


@runtime_checkable
class Decoder(Protocol):
    name: str  # the backend name that selects it: "generate" or "engine"
    continuous: bool  # True: concurrent decode() calls share one running batch

    def batch_key(self, request: DecodeRequest) -> Hashable:
        """Requests with equal keys can be decoded in one call; others run in separate groups."""
        ...

    def decode(
        self,
        requests: Sequence[DecodeRequest],
        *,
        on_step: ProgressFn | None = None,
        is_cancelled: CancelFn | None = None,
        on_frames: FramesFn | None = None,
    ) -> list[DecodeResult]: ...
