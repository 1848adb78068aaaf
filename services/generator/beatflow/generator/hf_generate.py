"""The ``generate`` decoder: static batches through ``transformers``' ``model.generate()``.

The reference implementation of :class:`~beatflow.generator.decoders.Decoder`.
One :class:`_StepSampler` logits processor per call does the per-request work
on every step: sampling with each request's own seeded generator (so a
request's audio does not depend on what else is in its batch), progress
callbacks, cancellation checks and frame streaming.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from beatflow.generator.decoders import (
    CancelFn,
    DecodeCancelled,
    DecodeRequest,
    DecodeResult,
    FramesFn,
    ProgressFn,
    Sampling,
)
from beatflow.generator.models import LoadedModel

# One-hot "logits" a sampled token is returned as: finite so that a guidance
# processor running after ours (uncond + g * (cond - uncond)) keeps it intact.
_CHOSEN, _OTHER = 0.0, -1.0e9


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


class GenerateDecoder:
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
