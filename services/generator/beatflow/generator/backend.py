"""The decoding backend interface, and its baseline on ``transformers`` ``generate()``.

A backend turns :class:`DecodeRequest` s (text, optional melody chroma or
prompt codes, length, seed, sampling) into codec codes. It knows nothing about
jobs, blobs or windows: the service plans windows, folds hints into the text,
decodes codes to audio and reports progress. Two implementations exist:

* :class:`GenerateBackend` (here): a static batch through ``model.generate()``.
  One :class:`_StepSampler` logits processor per call does the per-request
  work on every step: sampling with each request's own seeded generator (so a
  request's audio does not depend on what else is in its batch), progress
  callbacks, cancellation checks and frame streaming.
* the engine backend (``beatflow.generator.engine``): continuous batching.

Contract for implementers:

* ``decode`` is called from a worker thread (never the event loop) and
  blocks until every request is finished or cancelled. Backends with
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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from beatflow.generator.models import LoadedModel

ProgressFn = Callable[[str, int, int], None]
CancelFn = Callable[[str], bool]
FramesFn = Callable[[str, int, torch.Tensor], None]

# One-hot "logits" a sampled token is returned as: finite so that a guidance
# processor running after ours (uncond + g * (cond - uncond)) keeps it intact.
_CHOSEN, _OTHER = 0.0, -1.0e9


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
class GenerationBackend(Protocol):
    name: str
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


def request_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


@dataclass(frozen=True)
class RowParams:
    """Per-row sampling settings as device tensors, built once per batch (no host work per step)."""

    greedy: torch.Tensor
    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    k_max: int  # candidates any row can draw from

    @classmethod
    def build(cls, settings: Sequence[Sampling], rows_per_request: int, vocab: int, device: torch.device) -> RowParams:
        def rows(values: list[float] | list[bool] | list[int]) -> torch.Tensor:
            return torch.tensor(values, device=device).repeat_interleave(rows_per_request)

        ks = [min(max(s.top_k, 1), vocab) if s.top_k > 0 else vocab for s in settings]
        return cls(
            greedy=rows([s.greedy for s in settings]),
            temperature=rows([max(s.temperature, 1e-5) for s in settings]),
            top_k=rows(ks),
            top_p=rows([s.top_p if 0.0 < s.top_p < 1.0 else 1.0 for s in settings]),
            k_max=max(ks),
        )


def sample_rows(
    logits: torch.Tensor,
    settings: Sequence[Sampling] | RowParams,
    generators: Sequence[torch.Generator],
    rows_per_request: int,
) -> torch.Tensor:
    """Sample one token per row of ``logits`` (requests * rows_per_request, vocab).

    Temperature, top-k and top-p are applied per request; the uniform draws
    come from each request's own generator, so a row's token depends only on
    its logits and its request's seed, not on the rest of the batch.
    """
    device = logits.device
    vocab = logits.shape[-1]
    p = settings if isinstance(settings, RowParams) else RowParams.build(settings, rows_per_request, vocab, device)
    n_req = logits.shape[0] // rows_per_request
    logits = logits.float()
    scaled = logits / p.temperature[:, None]
    # Only the top max(k) candidates can be drawn: a partial top-k is much cheaper than a full sort.
    if p.k_max < vocab:
        sorted_logits, sorted_idx = scaled.topk(p.k_max, dim=-1)
    else:
        sorted_logits, sorted_idx = scaled.sort(dim=-1, descending=True)
    ranks = torch.arange(sorted_logits.shape[-1], device=device)[None, :]
    keep = ranks < p.top_k[:, None]
    probs = torch.softmax(sorted_logits.masked_fill(~keep, float("-inf")), dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass strictly before each token
    keep &= before < p.top_p[:, None]
    probs = probs.masked_fill(~keep, 0.0)
    cdf = probs.cumsum(dim=-1)
    draws = torch.stack([torch.rand(rows_per_request, generator=g, device=device) for g in generators[:n_req]])
    u = draws.reshape(-1, 1) * cdf[:, -1:]
    pos = torch.searchsorted(cdf, u, right=True).clamp_(max=sorted_logits.shape[-1] - 1)
    sampled = sorted_idx.gather(-1, pos).squeeze(-1)
    return torch.where(p.greedy, logits.argmax(dim=-1), sampled)


class _AllStepsSampled(Exception):
    """Raised after the last step: every code is recorded, so ``generate()`` need not run the codec."""


class _StepSampler(LogitsProcessor):
    """Per-step hook inside ``generate()``: samples, records, reports, checks cancellation."""

    def __init__(
        self,
        requests: Sequence[DecodeRequest],
        lm: LoadedModel,
        steps_total: int,
        on_step: ProgressFn | None,
        is_cancelled: CancelFn | None,
        on_frames: FramesFn | None,
        cancel_every: int = 2,
    ) -> None:
        self.requests = list(requests)
        self.k = lm.num_codebooks
        self.delays = [cb // lm.audio_channels for cb in range(lm.num_codebooks)]
        self.max_delay = lm.channel_codebooks - 1
        self.steps_total = steps_total
        self.on_step = on_step
        self.is_cancelled = is_cancelled
        self.on_frames = on_frames
        self.cancel_every = cancel_every
        self.generators = [request_generator(r.seed, lm.device) for r in requests]
        self.settings = [r.sampling for r in requests]
        self.params: RowParams | None = None
        self.tokens = torch.empty((len(requests) * self.k, steps_total), dtype=torch.long, device=lm.device)
        self.step = 0
        self.cancelled = [False] * len(requests)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        rows = len(self.requests) * self.k
        doubled = scores.shape[0] == 2 * rows
        logits = scores
        if doubled:  # guidance not applied yet: combine conditional and unconditional halves
            cond, uncond = scores[:rows], scores[rows:]
            scale = self.requests[0].guidance_scale
            logits = uncond + (cond - uncond) * scale
        if self.params is None:
            self.params = RowParams.build(self.settings, self.k, logits.shape[-1], logits.device)
        tokens = sample_rows(logits, self.params, self.generators, self.k)
        self.tokens[:, self.step] = tokens
        self.step += 1
        self._report()
        if self.step >= self.steps_total:
            # generate() would now decode the whole batch to audio, which the
            # service does itself from the codes: stop before that work.
            raise _AllStepsSampled
        out = torch.full((rows, scores.shape[-1]), _OTHER, dtype=scores.dtype, device=scores.device)
        out.scatter_(1, tokens[:, None], _CHOSEN)
        return torch.cat([out, out], dim=0) if doubled else out

    def _report(self) -> None:
        step = self.step
        for i, req in enumerate(self.requests):
            if self.cancelled[i]:
                continue
            if self.on_step is not None:
                self.on_step(req.request_id, min(step, self.steps_for(i)), self.steps_for(i))
            if self.on_frames is not None:
                frame = step - 1 - self.max_delay
                if 0 <= frame < req.new_frames:
                    self.on_frames(req.request_id, frame, self.frames(i, frame, frame + 1))
        if self.is_cancelled is not None and (step % self.cancel_every == 0 or step == 1):
            for i, req in enumerate(self.requests):
                if not self.cancelled[i] and self.is_cancelled(req.request_id):
                    self.cancelled[i] = True
            if all(self.cancelled):
                raise DecodeCancelled(f"all {len(self.requests)} requests cancelled at step {step}")

    def steps_for(self, i: int) -> int:
        return self.requests[i].new_frames + self.max_delay

    def frames(self, i: int, start: int, end: int) -> torch.Tensor:
        """Codes ``(K, end - start)`` of request ``i``: codebook k of frame f was sampled at step f + delay_k."""
        block = self.tokens[i * self.k : (i + 1) * self.k]
        out = torch.stack([block[cb, start + d : end + d] for cb, d in enumerate(self.delays)])
        return out.cpu()


class GenerateBackend:
    """Static batches through ``model.generate()`` (the reference implementation)."""

    name = "generate"
    continuous = False

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self._lock = threading.Lock()  # one generate() at a time on this model

    def batch_key(self, request: DecodeRequest) -> Hashable:
        # generate() applies one guidance scale to the batch and needs
        # rectangular decoder prompts; everything else is per request.
        prompt = 0 if request.prompt_codes is None else int(request.prompt_codes.shape[1])
        guidance = request.guidance_scale if request.guidance_scale > 1 else 1.0
        if self.lm.is_melody:
            # The melody decoder attends to the padded text positions too, so
            # only same-length descriptions batch without changing the audio.
            return (round(guidance, 6), prompt, len(self.lm.tokenizer(request.description)["input_ids"]))
        return (round(guidance, 6), prompt)

    def decode(
        self,
        requests: Sequence[DecodeRequest],
        *,
        on_step: ProgressFn | None = None,
        is_cancelled: CancelFn | None = None,
        on_frames: FramesFn | None = None,
    ) -> list[DecodeResult]:
        groups: dict[Hashable, list[DecodeRequest]] = {}
        for req in requests:
            groups.setdefault(self.batch_key(req), []).append(req)
        results: dict[str, DecodeResult] = {}
        for group in groups.values():
            for res in self._decode_group(group, on_step, is_cancelled, on_frames):
                results[res.request_id] = res
        return [results[r.request_id] for r in requests]

    def _chroma_batch(self, group: Sequence[DecodeRequest]) -> torch.Tensor:
        """(B, chroma_length, 12): each melody repeated/cut to the window; no melody -> the null chroma."""
        lm = self.lm
        rows = []
        for req in group:
            chroma = req.chroma
            if chroma is None or chroma.shape[0] == 0:
                chroma = torch.zeros((1, lm.num_chroma))
                chroma[:, 0] = 1.0
            reps = -(-lm.chroma_length // chroma.shape[0])
            rows.append(chroma.float().repeat(reps, 1)[: lm.chroma_length])
        return torch.stack(rows).to(lm.device, dtype=lm.dtype)

    def _decode_group(
        self,
        group: Sequence[DecodeRequest],
        on_step: ProgressFn | None,
        is_cancelled: CancelFn | None,
        on_frames: FramesFn | None,
    ) -> list[DecodeResult]:
        lm = self.lm
        max_frames = max(r.new_frames for r in group)
        steps = lm.steps_for_frames(max_frames)
        sampler = _StepSampler(group, lm, steps, on_step, is_cancelled, on_frames)
        kwargs: dict[str, Any] = dict(lm.tokenize([r.description for r in group]))
        if group[0].prompt_codes is not None:
            prompts = torch.stack([r.prompt_codes for r in group if r.prompt_codes is not None])
            kwargs["decoder_input_ids"] = prompts.reshape(-1, prompts.shape[-1]).to(lm.device)
        if lm.is_melody:
            kwargs["input_features"] = self._chroma_batch(group)
        guidance = group[0].guidance_scale
        config = GenerationConfig(
            decoder_start_token_id=lm.pad_token_id,
            pad_token_id=lm.pad_token_id,
            bos_token_id=lm.pad_token_id,
            do_sample=False,  # the sampler above picks the token; greedy takes it
            guidance_scale=guidance if guidance > 1 else None,
            max_new_tokens=steps,
            use_cache=True,
        )
        cancelled = False
        with self._lock, torch.inference_mode():
            try:
                lm.model.generate(**kwargs, generation_config=config, logits_processor=LogitsProcessorList([sampler]))
            except DecodeCancelled:
                cancelled = True
            except _AllStepsSampled:
                pass
        results = []
        for i, req in enumerate(group):
            if cancelled or sampler.cancelled[i]:
                results.append(DecodeResult(req.request_id, None, sampler.step, len(group), cancelled=True))
            else:
                codes = sampler.frames(i, 0, req.new_frames)
                results.append(DecodeResult(req.request_id, codes, sampler.steps_for(i), len(group)))
        return results


BACKENDS = ("auto", "engine", "generate")


def choose_backend(name: str, device: torch.device) -> tuple[str, str]:
    """The backend ``name`` selects on ``device`` and why: ``auto`` takes the decode engine where it is
    measured faster with equal output, ``generate()`` elsewhere until it is measured there."""
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name, "set by BEATFLOW_GENERATOR_BACKEND"
    if device.type == "cpu":
        return "engine", (
            "auto: on the CPU the engine is measured faster than generate() (bench/generate_engine.py: "
            "1.3-2.4x on the tiny preset) with greedy tokens equal to generate()'s"
        )
    return "generate", (
        f"auto: the engine is not yet measured on {device.type} (make gpu-check); "
        "generate() until it is; set BEATFLOW_GENERATOR_BACKEND=engine to choose it"
    )


def make_backend(name: str, lm: LoadedModel, *, window_s: float | None = None) -> GenerationBackend:
    """``generate`` (this module), ``engine`` (``beatflow.generator.engine``, sized for ``window_s``;
    None: the configured ``generator_max_window_s``) or ``auto`` (see ``choose_backend``)."""
    name, _ = choose_backend(name, lm.device)
    if name == "generate":
        return GenerateBackend(lm)
    if name == "engine":
        from beatflow.generator.engine.backend import create_backend

        return create_backend(lm, window_s=window_s)
    raise AssertionError(name)
