"""Codes -> audio with the model's codec, and streaming of a running request's audio in chunks.

A chunk is cut from a decode of the whole code prefix, holding back the last few frames whose
samples still depend on frames not generated yet (the codec's convolutions look ahead by a small,
fixed number of frames; its LSTM only looks back). Each chunk is therefore the same audio a full
decode gives, and the final audio is the concatenation of the chunks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn


def lookahead_frames(codec: Any, fallback: int) -> int:
    """Frames of right context the codec's decoder needs, from its layer shapes (an upper bound)."""
    decoder = getattr(codec, "decoder", None)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        return fallback
    rate = 1.0  # decoder samples per frame at the current layer
    frames = 0.0
    for layer in layers:
        for conv in [m for m in layer.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]:
            k, d, s = conv.kernel_size[0], conv.dilation[0], conv.stride[0]
            if isinstance(conv, nn.ConvTranspose1d):
                frames += math.ceil(k / s) / rate
            else:
                frames += (k - 1) * d / rate
        for conv in [m for m in layer.modules() if isinstance(m, nn.ConvTranspose1d)]:
            rate *= conv.stride[0]
    return math.ceil(frames) + 1


class CodecDecoder:
    """Decodes (codebooks, frames) codes to float32 (channels, samples) with the model's codec."""

    def __init__(self, model: Any) -> None:
        self.codec = model.audio_encoder
        cfg = model.config.audio_encoder
        self.sample_rate: int = int(cfg.sampling_rate)
        self.frame_rate: float = float(getattr(cfg, "frame_rate", 50))
        self.hop = round(self.sample_rate / self.frame_rate)
        self.audio_channels = getattr(model.decoder.config, "audio_channels", 1)
        self.lookahead = lookahead_frames(self.codec, fallback=int(self.frame_rate))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> np.ndarray:
        device = next(self.codec.parameters()).device
        codes = codes.to(device)
        if codes.shape[-1] == 0:
            return np.zeros((self.audio_channels, 0), dtype=np.float32)
        if self.audio_channels == 2:
            left = self.codec.decode(codes[None, None, ::2], [None]).audio_values
            right = self.codec.decode(codes[None, None, 1::2], [None]).audio_values
            audio = torch.cat([left, right], dim=1)[0]
        else:
            audio = self.codec.decode(codes[None, None], [None]).audio_values[0]
        return audio.float().cpu().numpy()


class ChunkStreamer:
    """Emits a request's audio in chunks of about ``chunk_frames`` frames as its codes complete."""

    def __init__(self, decoder: CodecDecoder, chunk_frames: int, total_frames: int) -> None:
        self.decoder = decoder
        self.chunk_frames = max(1, chunk_frames)
        self.total_frames = total_frames
        self.emitted_samples = 0
        self.emitted_frames = 0
        self.index = 0

    def due(self, complete_frames: int) -> bool:
        """Whether enough new frames are complete (beyond the look-ahead) for another chunk."""
        stable = complete_frames - self.decoder.lookahead
        return complete_frames < self.total_frames and stable - self.emitted_frames >= self.chunk_frames

    def take(self, codes: torch.Tensor, final: bool) -> np.ndarray:
        """New samples from a decode of ``codes`` (all complete frames so far)."""
        audio = self.decoder.decode(codes)
        if final:
            end = audio.shape[-1]
        else:
            stable = max(0, codes.shape[-1] - self.decoder.lookahead)
            end = min(audio.shape[-1], stable * self.decoder.hop)
        out = audio[:, self.emitted_samples : end]
        self.emitted_samples = max(self.emitted_samples, end)
        self.emitted_frames = end // self.decoder.hop
        self.index += 1
        return np.ascontiguousarray(out)
