"""Pieces longer than the model's window, by windowed extension.

MusicGen attends to at most ~30 s of audio. A longer piece is generated as a
sequence of windows: the first window is prompted with the caller's audio
prompt (if any); every next window is prompted with the last ``context``
frames of the piece so far and adds at most ``window - context`` new frames.
The windows of many pieces run in lockstep, one decoder call per window
index, so a batch of jobs stays a batch across its windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from beatflow.generator.decoders import Decoder, DecodeRequest, FramesFn, Sampling
from beatflow.generator.models import LoadedModel

log = logging.getLogger(__name__)

PieceProgress = Callable[[str, int, int], None]  # (piece_id, steps_done, steps_total)
PieceCancelled = Callable[[str], bool]


@dataclass(frozen=True)
class Window:
    index: int
    start_frame: int  # where this window's prompt starts in the piece (prompt included)
    prompt_frames: int
    new_frames: int


def plan_windows(new_frames: int, prompt_frames: int, window_frames: int, context_frames: int) -> list[Window]:
    """Split ``new_frames`` after a ``prompt_frames`` prompt into windows of at most ``window_frames``."""
    if prompt_frames >= window_frames:
        raise ValueError("the prompt must be shorter than the window")
    if not 0 < context_frames < window_frames:
        raise ValueError("the context must be shorter than the window")
    windows: list[Window] = []
    produced = prompt_frames  # frames of the piece so far (prompt included)
    remaining = new_frames
    prompt = prompt_frames
    while remaining > 0:
        new = min(remaining, window_frames - prompt)
        windows.append(Window(len(windows), produced - prompt, prompt, new))
        produced += new
        remaining -= new
        prompt = min(context_frames, produced)
    return windows


def window_seed(seed: int, index: int) -> int:
    """Window 0 uses the request's seed; later windows a seed derived from it (splitmix64)."""
    if index == 0:
        return seed
    z = (seed + index * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFF_FFFF_FFFF_FFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFF_FFFF_FFFF_FFFF
    return (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class WindowedPiece:
    """One output audio (a job's variation), generated window by window: its plan, then its codes."""

    piece_id: str
    description: str
    new_frames: int
    seed: int
    sampling: Sampling
    guidance_scale: float
    prompt_codes: torch.Tensor | None = None  # (K, P) the caller's audio prompt
    chroma: torch.Tensor | None = None  # (frames, 12) the melody, whole
    windows: list[Window] = field(default_factory=list)
    codes: torch.Tensor | None = None  # (K, prompt + generated) once done
    cancelled: bool = False
    batch_size: int = 0  # the most rows decoded together with it

    def steps_total(self, delay: int) -> int:
        return sum(w.new_frames + delay for w in self.windows)


class WindowRunner:
    """Plans each piece's windows and runs the windows of many pieces in lockstep through a decoder."""

    def __init__(self, lm: LoadedModel, decoder: Decoder, window_s: float, context_s: float) -> None:
        self.lm = lm
        self.decoder = decoder
        self.window_frames = lm.frames_for_seconds(window_s)
        self.context_frames = lm.frames_for_seconds(context_s)
        self.delay = lm.channel_codebooks - 1

    def plan(self, piece: WindowedPiece) -> None:
        prompt = 0 if piece.prompt_codes is None else int(piece.prompt_codes.shape[1])
        piece.windows = plan_windows(piece.new_frames, prompt, self.window_frames, self.context_frames)

    def _chroma_for(self, piece: WindowedPiece, window: Window) -> torch.Tensor | None:
        """The melody frames under this window (looping a melody shorter than the piece)."""
        if piece.chroma is None:
            return None
        rate = self.lm.chroma_rate / self.lm.frame_rate  # chroma frames per codec frame
        start = int(window.start_frame * rate)
        length = max(1, round((window.prompt_frames + window.new_frames) * rate))
        idx = (torch.arange(start, start + length) % piece.chroma.shape[0]).long()
        return piece.chroma[idx]

    def run(
        self,
        pieces: Sequence[WindowedPiece],
        on_progress: PieceProgress | None = None,
        is_cancelled: PieceCancelled | None = None,
        on_frames: FramesFn | None = None,
    ) -> None:
        """Fill ``piece.codes`` (or ``piece.cancelled``) for every piece.

        ``on_frames(piece_id, start, codes)`` streams new frames as they complete, ``start``
        counted from the first new frame of the window (windows arrive in order).
        """
        for piece in pieces:
            if not piece.windows:
                self.plan(piece)
            piece.codes = piece.prompt_codes.cpu() if piece.prompt_codes is not None else None
        done_before = {p.piece_id: 0 for p in pieces}
        totals = {p.piece_id: p.steps_total(self.delay) for p in pieces}
        by_id = {p.piece_id: p for p in pieces}

        def step(request_id: str, done: int, _total: int) -> None:
            if on_progress is not None:
                on_progress(request_id, done_before[request_id] + done, totals[request_id])

        index = 0
        while True:
            active = [p for p in pieces if index < len(p.windows) and not p.cancelled]
            if is_cancelled is not None:
                for p in active:
                    p.cancelled = p.cancelled or is_cancelled(p.piece_id)
                active = [p for p in active if not p.cancelled]
            if not active:
                break
            requests = []
            for p in active:
                w = p.windows[index]
                prompt = None if w.prompt_frames == 0 or p.codes is None else p.codes[:, -w.prompt_frames :]
                requests.append(
                    DecodeRequest(
                        request_id=p.piece_id,
                        description=p.description,
                        new_frames=w.new_frames,
                        seed=window_seed(p.seed, index),
                        sampling=p.sampling,
                        guidance_scale=p.guidance_scale,
                        prompt_codes=prompt,
                        chroma=self._chroma_for(p, w),
                    )
                )
            log.info("decoding window %d for %d pieces", index, len(active))
            results = self.decoder.decode(requests, on_step=step, is_cancelled=is_cancelled, on_frames=on_frames)
            for res in results:
                p = by_id[res.request_id]
                p.batch_size = max(p.batch_size, res.batch_size)
                if res.cancelled or res.codes is None:
                    p.cancelled = True
                    continue
                p.codes = res.codes if p.codes is None else torch.cat([p.codes, res.codes], dim=1)
                done_before[p.piece_id] += p.windows[index].new_frames + self.delay
            index += 1
