"""The ``engine`` decoder: the decode engine (``engine/``) behind the service's
:class:`~beatflow.generator.decoders.Decoder` interface.

Select it with ``BEATFLOW_GENERATOR_BACKEND=engine`` (``decoder_choice.make_decoder``). The
engine runs its step loop on one background thread; every ``decode`` call (from any number of
worker threads) submits its requests to the running batch and waits for them, so a call never
waits for another call's longer requests.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from beatflow.generator.decoders import (
    CancelFn,
    DecodeRequest,
    DecodeResult,
    FramesFn,
    ProgressFn,
)
from beatflow.generator.engine.engine import DecodeEngine, EngineConfig, RequestHandle, half_dtype_for
from beatflow.generator.engine.types import EngineRequest, SamplingParams
from beatflow.generator.models import LoadedModel

log = logging.getLogger(__name__)


def default_slots(lm: LoadedModel, grid: int, dtype: torch.dtype | None) -> int:
    """Concurrent requests: up to 32 on a GPU (a step costs about the same for 1 or 32) as long as their
    key/value cache takes at most a third of the free GPU memory; 8 on a CPU."""
    if lm.device.type != "cuda":
        return 8
    cfg: Any = lm.model.config.decoder
    itemsize = torch.empty((), dtype=dtype or lm.dtype).element_size()
    prefix = (lm.chroma_length + 256) if lm.is_melody else 0
    per_slot = 2 * 2 * cfg.num_hidden_layers * (grid + prefix) * cfg.hidden_size * itemsize  # 2 rows, K and V
    free, _ = torch.cuda.mem_get_info(lm.device)
    return max(1, min(32, int(free / 3 / per_slot)))


class EngineDecoder:
    """Continuous batching: concurrent ``decode`` calls share one running batch."""

    name = "engine"
    continuous = True

    def __init__(
        self,
        lm: LoadedModel,
        *,
        slots: int | None = None,
        window_s: float = 30.0,
        max_text_tokens: int = 256,
        dtype: torch.dtype | None = None,
        frames_every: int = 10,
    ) -> None:
        """``dtype`` None: bfloat16 (float16 on older GPUs) on CUDA, converting the loaded decoder in
        place; the model's own dtype on the CPU."""
        self.lm = lm
        window = math.ceil(window_s * lm.frame_rate)
        if dtype is None:
            dtype = half_dtype_for(lm.device)
        config = EngineConfig(
            max_slots=slots or default_slots(lm, 1 + lm.steps_for_frames(window), dtype),
            max_new_tokens=lm.steps_for_frames(window),
            max_prompt_frames=window,
            max_grid=1 + lm.steps_for_frames(window),
            max_text_tokens=max_text_tokens,
            dtype=dtype,
        )
        self.engine = DecodeEngine(lm.model, lm.tokenizer, config)
        self.frames_every = frames_every
        self.engine.start()

    def close(self) -> None:
        self.engine.close()

    def batch_key(self, request: DecodeRequest) -> Hashable:
        # Every request has its own slot, settings and prompt length: anything batches with anything.
        return "engine"

    def _engine_request(
        self,
        req: DecodeRequest,
        on_step: ProgressFn | None,
        is_cancelled: CancelFn | None,
        on_frames: FramesFn | None,
    ) -> EngineRequest:
        rid = req.request_id
        prompt_frames = 0 if req.prompt_codes is None else int(req.prompt_codes.shape[-1])
        s = req.sampling

        def progress(done: int, total: int) -> None:
            if on_step is not None:
                on_step(rid, done, total)

        def cancelled() -> bool:
            return bool(is_cancelled(rid)) if is_cancelled is not None else False

        def frames(start: int, codes: torch.Tensor) -> None:
            # The engine streams the prompt's frames too; the protocol counts new frames only.
            if on_frames is None:
                return
            skip = max(0, prompt_frames - start)
            if codes.shape[-1] > skip:
                on_frames(rid, start + skip - prompt_frames, codes[:, skip:])

        return EngineRequest(
            max_new_tokens=self.lm.steps_for_frames(req.new_frames),
            text=req.description,
            melody_chroma=req.chroma if self.lm.is_melody else None,
            prompt_codes=req.prompt_codes,
            sampling=SamplingParams(
                greedy=s.greedy,
                temperature=s.temperature if not s.greedy else 1.0,
                top_k=s.top_k,
                top_p=s.top_p,
                guidance_scale=req.guidance_scale,
            ),
            seed=req.seed,
            request_id=rid,
            on_progress=progress if on_step is not None else None,
            is_cancelled=cancelled if is_cancelled is not None else None,
            on_frames=frames if on_frames is not None else None,
            frames_every=self.frames_every,
            decode_audio=False,
        )

    def decode(
        self,
        requests: Sequence[DecodeRequest],
        *,
        on_step: ProgressFn | None = None,
        is_cancelled: CancelFn | None = None,
        on_frames: FramesFn | None = None,
    ) -> list[DecodeResult]:
        handles: list[RequestHandle] = []
        try:
            for req in requests:
                handles.append(self.engine.submit(self._engine_request(req, on_step, is_cancelled, on_frames)))
            results = []
            for req, handle in zip(requests, handles, strict=True):
                res = handle.result()
                prompt_frames = 0 if req.prompt_codes is None else int(req.prompt_codes.shape[-1])
                codes = None if res.cancelled else res.codes[:, prompt_frames:].contiguous()
                results.append(DecodeResult(req.request_id, codes, res.steps, res.batch_size, cancelled=res.cancelled))
            return results
        except BaseException:
            for handle in handles:  # one failed request fails the call: stop its siblings too
                handle.cancel()
            raise
