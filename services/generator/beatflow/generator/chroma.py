"""Melody conditioning: 12-bin chroma of a recording, computed without torchaudio.

It reproduces what the ``transformers`` MusicGen-melody feature extractor
computes (that extractor needs torchaudio for its spectrogram): audio at the
model rate, mono, cut to the melody window, zero-padded to one FFT when
shorter; a centred, reflect-padded power STFT (n_fft 16384, hop 4096, Hann);
a chroma filter bank (librosa's, from ``transformers.audio_utils``); then per
frame the strongest pitch class as a one-hot vector. Frames come at
``sample_rate / hop`` per second (7.8 Hz at 32 kHz).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import chroma_filter_bank

N_FFT = 16384
HOP = 4096


@lru_cache(maxsize=4)
def _filters(sample_rate: int, num_chroma: int) -> torch.Tensor:
    bank = chroma_filter_bank(num_frequency_bins=N_FFT, num_chroma=num_chroma, sampling_rate=sample_rate, tuning=0)
    return torch.from_numpy(np.asarray(bank)).float()


def chroma_rate(sample_rate: int) -> float:
    return sample_rate / HOP


def chroma_features(
    wav: np.ndarray | torch.Tensor, sample_rate: int, *, num_chroma: int = 12, max_seconds: float | None = 30.0
) -> torch.Tensor:
    """One-hot chroma ``(frames, num_chroma)`` of mono or ``(channels, samples)`` audio at ``sample_rate``."""
    audio = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if audio.ndim == 2:
        audio = audio.mean(dim=0)
    if max_seconds is not None:
        audio = audio[: int(max_seconds * sample_rate)]
    if audio.shape[-1] < N_FFT:
        pad = N_FFT - audio.shape[-1]
        audio = torch.nn.functional.pad(audio, (pad // 2, pad - pad // 2))
    window = torch.hann_window(N_FFT)
    spec = torch.stft(
        audio,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        return_complex=True,
    )
    power = spec.abs().pow(2) / window.pow(2).sum()  # (freq, frames); scale as torchaudio's normalized=True
    raw = _filters(sample_rate, num_chroma) @ power  # (chroma, frames)
    norm = raw / raw.amax(dim=0, keepdim=True).clamp_min(1e-6)
    idx = norm.argmax(dim=0)  # (frames,)
    return torch.nn.functional.one_hot(idx, num_chroma).float()
