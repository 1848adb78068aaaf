"""The decode engine: continuous batching of MusicGen requests over fixed slots.

Each admitted request owns a slot: a row pair (conditional, unconditional) in the static key/value
cache, its token grid, its position and its sampling settings. Every :meth:`DecodeEngine.step`
first drops cancelled requests and admits waiting ones (a new request joins at once, with its own
prompt, seed, length and settings), then advances every running request by one token, then hands
out progress, audio chunks and finished results. Active slots are kept packed at the front, so a
step works on exactly the running requests (on CUDA: the next power-of-two bucket, replayed as a
CUDA graph). The loop never reads a device value back except to finish a request or cut a chunk.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from beatflow.generator.codec_audio import ChunkStreamer, CodecDecoder
from beatflow.generator.engine.conditioning import Conditioner
from beatflow.generator.engine.decoder import DecoderView
from beatflow.generator.engine.delay import build_pattern, delay_span, extract_codes, first_free_column
from beatflow.generator.engine.graphs import StepGraphs
from beatflow.generator.engine.sampling import choose_tokens, counter_uniform, guide, split_seed
from beatflow.generator.engine.types import AudioChunk, EngineRequest, EngineResult

log = logging.getLogger(__name__)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1/0 (true/false, yes/no, on/off), not {value!r}")


@dataclass
class EngineConfig:
    """Sizes of the preallocated state and how the step runs.

    ``max_new_tokens`` and ``max_prompt_frames`` bound a request's token grid; ``max_text_tokens``
    bounds the conditioning text. Streamed frames and chunks are cut every ``stream_every`` steps,
    at the same steps for every request, so the loop reads the device at most that often.
    ``dtype`` None keeps the decoder's dtype; another dtype converts the loaded decoder in place
    (one copy of the weights). ``cuda_graphs`` applies on CUDA only.

    ``fused_qkv`` (default from ``BEATFLOW_ENGINE_FUSED_QKV``, on): each layer's query/key/value
    projections as one GEMM on one weight that the model's projections are views of.
    ``exact_attention`` (default from ``BEATFLOW_ENGINE_EXACT_ATTENTION``, on): when every running
    row is at the same cache position (one request, or requests that started together), the step's
    attention reads exactly the used positions without a mask; otherwise (and in CUDA graphs, which
    read the used length rounded up to ``length_bucket``) it reads the positions up to the furthest
    row with a mask. Both give the same tokens as ``generate()`` under greedy float32 decoding.
    """

    max_slots: int = 8
    max_new_tokens: int = 1503
    max_prompt_frames: int = 0
    max_text_tokens: int = 64
    max_grid: int | None = None  # cap on start token + prompt + new steps (default: no extra cap)
    dtype: torch.dtype | None = None
    cuda_graphs: bool = True
    length_bucket: int = 128
    stream_every: int = 10  # steps between looks at streamed frames/chunks (each look reads the device)
    fused_qkv: bool = field(default_factory=lambda: _env_flag("BEATFLOW_ENGINE_FUSED_QKV", True))
    exact_attention: bool = field(default_factory=lambda: _env_flag("BEATFLOW_ENGINE_EXACT_ATTENTION", True))


def half_dtype_for(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it, float16 on older GPUs, None (keep float32) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class RequestHandle:
    """The caller's side of a submitted request: wait for the result, or cancel it."""

    def __init__(self, request: EngineRequest) -> None:
        self.request = request
        self.future: Future[EngineResult] = Future()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        if self._cancel.is_set():
            return True
        check = self.request.is_cancelled
        return bool(check()) if check is not None else False

    def result(self, timeout: float | None = None) -> EngineResult:
        return self.future.result(timeout)

    def done(self) -> bool:
        return self.future.done()


@dataclass(eq=False)
class _Slot:
    handle: RequestHandle
    seed: int
    total_len: int  # grid columns: start token + prompt + new steps
    col: int  # grid column of the token fed next
    cpos: int  # cache position of that token
    steps_done: int
    steps_total: int
    streamer: ChunkStreamer | None
    chunks: list[np.ndarray] = field(default_factory=list)
    frames_sent: int = 0
    peak_batch: int = 1


class DecodeEngine:
    """Continuous-batching MusicGen decoder on the loaded model's weights."""

    def __init__(self, model: Any, tokenizer: Any | None = None, config: EngineConfig | None = None) -> None:
        self.config = cfg = config or EngineConfig()
        self.model = model
        if cfg.dtype is not None and next(model.decoder.parameters()).dtype != cfg.dtype:
            model.decoder.to(cfg.dtype)
            for name in ("enc_to_dec_proj", "audio_enc_to_dec_proj"):
                if hasattr(model, name):
                    getattr(model, name).to(cfg.dtype)
        self.view = DecoderView(model, fused_qkv=cfg.fused_qkv)
        info = self.view.info
        self.device = self.view.device
        self.dtype = self.view.dtype
        self.conditioner = Conditioner(model, tokenizer, cfg.max_text_tokens, self.dtype)
        self.codec = CodecDecoder(model)
        self.span = delay_span(info.num_codebooks, info.audio_channels)
        self.melody = self.conditioner.melody
        self.prefix_max = (model.config.chroma_length + cfg.max_text_tokens) if self.melody else 0
        self.grid_len = 1 + cfg.max_prompt_frames + cfg.max_new_tokens
        if cfg.max_grid is not None:
            self.grid_len = min(self.grid_len, cfg.max_grid)
        self.cache_len = self.prefix_max + self.grid_len
        self._alloc()
        self._slots: list[_Slot] = []
        self._pending: deque[RequestHandle] = deque()
        self._lock = threading.Condition()
        self._step_lock = threading.Lock()  # one step at a time, whoever drives the loop
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.use_graphs = cfg.cuda_graphs and self.device.type == "cuda"
        self._graphs = StepGraphs(self._step_impl) if self.use_graphs else None
        self.steps_run = 0

    # ----------------------------------------------------------------- state
    def _alloc(self) -> None:
        info, cfg, dev = self.view.info, self.config, self.device
        s, k = cfg.max_slots, info.num_codebooks
        shape = (2 * s, info.heads, self.cache_len, info.head_dim)
        self.k_cache = [torch.zeros(shape, device=dev, dtype=self.dtype) for _ in range(info.layers)]
        self.v_cache = [torch.zeros(shape, device=dev, dtype=self.dtype) for _ in range(info.layers)]
        if info.cross_attention:
            xshape = (2 * s, info.heads, cfg.max_text_tokens, info.head_dim)
            self.x_k: list[torch.Tensor] | None = [
                torch.zeros(xshape, device=dev, dtype=self.dtype) for _ in range(info.layers)
            ]
            self.x_v: list[torch.Tensor] | None = [
                torch.zeros(xshape, device=dev, dtype=self.dtype) for _ in range(info.layers)
            ]
            xm = (2 * s, 1, 1, cfg.max_text_tokens)
            self.x_mask: torch.Tensor | None = torch.ones(xm, device=dev, dtype=torch.bool)
        else:
            self.x_k = self.x_v = None
            self.x_mask = None
        self.pos_table = self.view.positions(self.cache_len)
        self.seq = torch.full((s, k, self.grid_len), info.pad_token, device=dev, dtype=torch.long)
        self.col = torch.zeros(s, device=dev, dtype=torch.long)
        self.cpos = torch.zeros(s, device=dev, dtype=torch.long)
        self.active = torch.zeros(s, device=dev, dtype=torch.bool)
        self.greedy = torch.zeros(s, device=dev, dtype=torch.bool)
        self.temperature = torch.ones(s, device=dev, dtype=torch.float32)
        self.top_k = torch.zeros(s, device=dev, dtype=torch.long)
        self.top_p = torch.zeros(s, device=dev, dtype=torch.float32)
        self.guidance = torch.ones(s, device=dev, dtype=torch.float32)
        self.seed_lo = torch.zeros(s, device=dev, dtype=torch.long)
        self.seed_hi = torch.zeros(s, device=dev, dtype=torch.long)
        self._per_slot = [
            self.seq, self.col, self.cpos, self.active, self.greedy, self.temperature,
            self.top_k, self.top_p, self.guidance, self.seed_lo, self.seed_hi,
        ]  # fmt: skip

    @property
    def running(self) -> int:
        return len(self._slots)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def steps_for_frames(self, frames: int) -> int:
        """Decode steps that yield ``frames`` new audio frames (the delay adds ``span - 1``)."""
        return frames + self.span - 1

    def steps_for_duration(self, seconds: float) -> int:
        return self.steps_for_frames(max(1, round(seconds * self.codec.frame_rate)))

    # ------------------------------------------------------------ public API
    def submit(self, request: EngineRequest) -> RequestHandle:
        """Queue a request; it joins the running batch at the next step boundary."""
        request.sampling.validate()
        if not self.span <= request.max_new_tokens <= self.config.max_new_tokens:
            # fewer steps than the codebook delay would not complete a single frame
            raise ValueError(f"max_new_tokens must be within {self.span}..{self.config.max_new_tokens}")
        handle = RequestHandle(request)
        with self._lock:
            self._pending.append(handle)
            self._lock.notify_all()
        return handle

    def generate(self, requests: list[EngineRequest]) -> list[EngineResult]:
        """Run ``requests`` to completion on the calling thread (no background loop needed)."""
        handles = [self.submit(r) for r in requests]
        while not all(h.done() for h in handles):
            self.step()
        return [h.result() for h in handles]

    def start(self) -> None:
        """Run the step loop on a background thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="decode-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._step_lock:  # nobody is left to run them: fail what is still queued or running
            with self._lock:
                pending, self._pending = list(self._pending), deque()
            for handle in pending:
                if not handle.future.done():
                    handle.future.set_exception(RuntimeError("decode engine closed"))
            self._fail_all("decode engine closed")

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and not self._pending and not self._slots:
                    self._lock.wait()
                if self._stopping:
                    break
            try:
                self.step()
            except Exception:  # a broken step fails the running requests, not the loop
                log.exception("decode step failed")
                self._fail_all()

    def _fail_all(self, why: str = "decode step failed") -> None:
        for slot in list(self._slots):
            if not slot.handle.future.done():
                slot.handle.future.set_exception(RuntimeError(why))
        self._slots.clear()
        self.active.zero_()

    # ------------------------------------------------------------------ step
    def step(self) -> bool:
        """Drop cancelled requests, admit waiting ones, decode one token for all; False when idle."""
        with self._step_lock, torch.inference_mode():
            return self._step_locked()

    def _step_locked(self) -> bool:
        for i in reversed(range(len(self._slots))):
            if self._slots[i].handle.cancel_requested:
                self._finish(i, cancelled=True)
        self._admit()
        n = len(self._slots)
        if n == 0:
            return False
        used = max(s.cpos for s in self._slots) + 1
        length = self._attention_length(used)
        if self._graphs is not None:
            bucket = 1 << (n - 1).bit_length()
            bucket = min(bucket, self.config.max_slots)
            lb = self.config.length_bucket
            length = min(self.cache_len, -(-length // lb) * lb)
            self._graphs.run(bucket, length, self.view.info.vocab, self._snapshot)
        else:
            width = self._sort_width()
            nucleus = any(0.0 < s.handle.request.sampling.top_p < 1.0 for s in self._slots)
            # every row at the last used position: all of [0, used) is visible to all, no mask needed
            unmasked = self.config.exact_attention and length == used and all(s.cpos == used - 1 for s in self._slots)
            self._step_impl(n, length, width, nucleus, unmasked)
        self.steps_run += 1
        for i in reversed(range(n)):
            self._after_step(i)
        return True

    def _attention_length(self, used: int) -> int:
        """Cache positions the step's attention reads: those in use (positions beyond are masked out
        anyway). A subclass may read more, e.g. the whole static cache, to measure what this saves."""
        return used

    def _sort_width(self) -> int:
        vocab = self.view.info.vocab
        width = 1
        for s in self._slots:
            sp = s.handle.request.sampling
            if sp.greedy:
                continue
            if sp.top_k <= 0 or 0.0 < sp.top_p < 1.0:
                return vocab
            width = max(width, sp.top_k)
        return min(width, vocab)

    def _snapshot(self) -> object:
        saved = [t.clone() for t in (self.seq, self.col, self.cpos)]

        def restore() -> None:
            for dst, src in zip((self.seq, self.col, self.cpos), saved, strict=True):
                dst.copy_(src)

        return restore

    def _step_impl(self, n: int, length: int, width: int, nucleus: bool = True, unmasked: bool = False) -> None:
        info = self.view.info
        k = info.num_codebooks
        col = self.col[:n]
        seq = self.seq[:n]
        act = self.active[:n]
        tok = seq.gather(2, col.view(n, 1, 1).expand(n, k, 1)).squeeze(2)
        tok = torch.where(tok < 0, torch.full_like(tok, info.pad_token), tok)
        # rows 2i and 2i+1 are slot i's conditional and unconditional rows (expand: no host sync)
        rows_tok = tok[:, None].expand(n, 2, k).reshape(2 * n, k)
        rows_pos = self.cpos[:n, None].expand(n, 2).reshape(2 * n)
        hidden = (self.view.embed(rows_tok) + self.pos_table[rows_pos]).unsqueeze(1)
        x_mask = self.x_mask[: 2 * n] if self.x_mask is not None else None
        logits = self.view.step(
            hidden, rows_pos, self.k_cache, self.v_cache, length, self.x_k, self.x_v, x_mask, unmasked
        )
        scores = guide(logits.float().view(n, 2, k, info.vocab), self.guidance[:n])
        uniform = counter_uniform(self.seed_lo[:n], self.seed_hi[:n], col + 1, k)
        nxt = choose_tokens(
            scores, self.greedy[:n], self.temperature[:n], self.top_k[:n], self.top_p[:n], uniform, width, nucleus
        )
        target = (col + 1).view(n, 1, 1).expand(n, k, 1)
        cur = seq.gather(2, target).squeeze(2)
        new = torch.where((cur == -1) & act[:, None], nxt, cur)
        seq.scatter_(2, target, new.unsqueeze(2))
        step = act.to(torch.long)
        self.col[:n] += step
        self.cpos[:n] += step

    # ------------------------------------------------------------- admission
    def _admit(self) -> None:
        while len(self._slots) < self.config.max_slots:
            with self._lock:
                if not self._pending:
                    return
                handle = self._pending.popleft()
            if handle.cancel_requested:
                self._resolve_cancelled_unstarted(handle)
                continue
            try:
                self._place(handle, len(self._slots))
            except Exception as exc:  # a bad request fails alone
                log.exception("admitting request %s failed", handle.request.request_id)
                handle.future.set_exception(exc)

    def _resolve_cancelled_unstarted(self, handle: RequestHandle) -> None:
        k = self.view.info.num_codebooks
        handle.future.set_result(
            EngineResult(
                request_id=handle.request.request_id,
                codes=torch.zeros((k, 0), dtype=torch.long),
                audio=np.zeros((self.codec.audio_channels, 0), dtype=np.float32),
                sample_rate=self.codec.sample_rate,
                steps=0,
                cancelled=True,
            )
        )

    def _place(self, handle: RequestHandle, j: int) -> None:
        req = handle.request
        info = self.view.info
        cond = self.conditioner(req)
        prompt = cond.prompt_codes
        prompt_frames = 0 if prompt is None else prompt.shape[-1]
        if prompt_frames > self.config.max_prompt_frames:
            limit = self.config.max_prompt_frames
            raise ValueError(f"prompt of {prompt_frames} frames exceeds max_prompt_frames={limit}")
        total_len = 1 + prompt_frames + req.max_new_tokens
        if total_len > self.grid_len:
            raise ValueError(f"prompt ({prompt_frames} frames) + {req.max_new_tokens} steps exceed the grid")
        pattern = build_pattern(prompt, info.num_codebooks, info.audio_channels, total_len, info.pad_token)
        first = first_free_column(pattern)
        prefix_len = 0 if cond.prefix is None else cond.prefix.shape[1]
        rows = slice(2 * j, 2 * j + 2)
        dev = self.device

        self.seq[j].fill_(info.pad_token)
        self.seq[j, :, :total_len] = pattern.to(dev)
        if cond.cross_states is not None and self.x_k is not None and self.x_v is not None:
            assert cond.cross_valid is not None and self.x_mask is not None
            e = cond.cross_states.shape[1]
            for layer, (ck, cv) in enumerate(self.view.cross_kv(cond.cross_states)):
                self.x_k[layer][rows].zero_()
                self.x_v[layer][rows].zero_()
                self.x_k[layer][rows, :, :e] = ck
                self.x_v[layer][rows, :, :e] = cv
            self.x_mask[rows].fill_(False)
            self.x_mask[rows, 0, 0, :e] = cond.cross_valid
            self.x_mask[2 * j + 1].fill_(True)  # unconditional row: all-zero keys/values, output exactly 0
        fed = pattern[:, : first - 1].T.to(dev)  # grid columns before the first fed token
        parts = []
        if cond.prefix is not None:
            parts.append(cond.prefix)
        if fed.shape[0] > 0:
            parts.append(self.view.embed(fed)[None].expand(2, -1, -1))
        if parts:
            hidden = torch.cat(parts, dim=1)
            hidden = hidden + self.pos_table[: hidden.shape[1]]
            x_mask = self.x_mask[rows] if self.x_mask is not None else None
            self.view.prefill(hidden, self.k_cache, self.v_cache, rows, self.x_k, self.x_v, x_mask)

        seed = req.seed if req.seed is not None else secrets.randbits(63)
        lo, hi = split_seed(seed)
        sp = req.sampling
        values: list[Any] = [
            None, first - 1, prefix_len + first - 1, True, sp.greedy, 1.0 if sp.greedy else sp.temperature,
            sp.top_k, sp.top_p, sp.guidance_scale, lo, hi,
        ]  # fmt: skip
        for tensor, value in zip(self._per_slot, values, strict=True):
            if value is not None:
                tensor[j] = value
        streamer = None
        if req.on_chunk is not None and req.decode_audio:
            frames = max(1, round(req.chunk_seconds * self.codec.frame_rate))
            streamer = ChunkStreamer(self.codec, frames, total_len - self.span)
        self._slots.append(
            _Slot(
                handle=handle,
                seed=seed,
                total_len=total_len,
                col=first - 1,
                cpos=prefix_len + first - 1,
                steps_done=0,
                steps_total=total_len - first,
                streamer=streamer,
            )
        )

    # ---------------------------------------------------------- after a step
    def _after_step(self, i: int) -> None:
        slot = self._slots[i]
        slot.col += 1
        slot.cpos += 1
        slot.steps_done += 1
        slot.peak_batch = max(slot.peak_batch, len(self._slots))
        req = slot.handle.request
        try:
            if req.on_progress is not None:
                req.on_progress(slot.steps_done, slot.steps_total)
            if slot.steps_done >= slot.steps_total:
                self._finish(i, cancelled=False)
                return
            if self.steps_run % max(1, self.config.stream_every):
                return  # stream on shared step boundaries only, so the device is read once for all
            complete = min(slot.col - self.span + 1, slot.total_len - self.span)
            if slot.streamer is not None and slot.streamer.due(complete):
                self._emit_chunk(slot, complete, final=False)
            if req.on_frames is not None and complete - slot.frames_sent >= max(1, req.frames_every):
                grid = self._grid_of(slot)
                self._send_frames(slot, extract_codes(grid, self.view.info.audio_channels, frames=complete))
        except Exception as exc:  # a failing callback fails its own request
            log.exception("request %s failed after a step", req.request_id)
            if slot in self._slots:
                self._remove(self._slots.index(slot))
            if not slot.handle.future.done():
                slot.handle.future.set_exception(exc)

    @staticmethod
    def _send_frames(slot: _Slot, codes: torch.Tensor) -> None:
        on_frames = slot.handle.request.on_frames
        if on_frames is not None and codes.shape[-1] > slot.frames_sent:
            start = slot.frames_sent
            slot.frames_sent = codes.shape[-1]
            on_frames(start, codes[:, start:].clone())

    def _grid_of(self, slot: _Slot) -> torch.Tensor:
        """The slot's token grid up to its last written column, on the CPU (a device sync)."""
        return self.seq[self._slots.index(slot), :, : slot.col + 1].to("cpu", copy=True)

    def _emit_chunk(self, slot: _Slot, complete: int, final: bool, codes: torch.Tensor | None = None) -> None:
        assert slot.streamer is not None
        req = slot.handle.request
        if codes is None:
            codes = extract_codes(self._grid_of(slot), self.view.info.audio_channels, frames=complete)
        start = slot.streamer.emitted_samples
        index = slot.streamer.index
        samples = slot.streamer.take(codes, final=final)
        slot.chunks.append(samples)
        assert req.on_chunk is not None
        req.on_chunk(
            AudioChunk(
                request_id=req.request_id,
                index=index,
                start_sample=start,
                samples=samples,
                sample_rate=self.codec.sample_rate,
                final=final,
            )
        )

    def _finish(self, i: int, cancelled: bool) -> None:
        """Take the request's codes off the device, free its slot, then decode and resolve it."""
        slot = self._slots[i]
        req = slot.handle.request
        grid = self._grid_of(slot)
        self._remove(i)
        audio_channels = self.view.info.audio_channels
        empty = np.zeros((self.codec.audio_channels, 0), dtype=np.float32)
        try:
            if cancelled:
                frames = max(0, min(slot.col - self.span + 1, slot.total_len - self.span))
                codes = extract_codes(grid, audio_channels, frames=frames)
                audio = empty
            else:
                codes = extract_codes(grid, audio_channels)
                self._send_frames(slot, codes)
                if slot.streamer is not None:
                    self._emit_chunk(slot, codes.shape[-1], final=True, codes=codes)
                    audio = np.concatenate(slot.chunks, axis=-1)
                elif req.decode_audio:
                    audio = self.codec.decode(codes)
                else:
                    audio = empty
        except Exception as exc:  # a failing callback or decode fails its own request
            log.exception("finishing request %s failed", req.request_id)
            if not slot.handle.future.done():
                slot.handle.future.set_exception(exc)
            return
        if not slot.handle.future.done():
            slot.handle.future.set_result(
                EngineResult(
                    request_id=req.request_id,
                    codes=codes,
                    audio=audio,
                    sample_rate=self.codec.sample_rate,
                    steps=slot.steps_done,
                    cancelled=cancelled,
                    seed=slot.seed,
                    batch_size=slot.peak_batch,
                )
            )

    def _remove(self, i: int) -> None:
        """Free slot ``i``, moving the last running request into it so running slots stay packed."""
        last = len(self._slots) - 1
        if i != last:
            moved = self._slots[last]
            for tensor in self._per_slot:
                tensor[i] = tensor[last]
            upto = moved.cpos + 1
            src, dst = slice(2 * last, 2 * last + 2), slice(2 * i, 2 * i + 2)
            for cache in (*self.k_cache, *self.v_cache):
                cache[dst, :, :upto] = cache[src, :, :upto]
            if self.x_k is not None and self.x_v is not None and self.x_mask is not None:
                for cache in (*self.x_k, *self.x_v):
                    cache[dst] = cache[src]
                self.x_mask[dst] = self.x_mask[src]
            self._slots[i] = moved
        self._slots.pop()
        self.active[last] = False
        self.col[last] = 0
        self.cpos[last] = 0
