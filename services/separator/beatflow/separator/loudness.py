"""Integrated loudness (ITU-R BS.1770-4 / EBU R128) and sample peak, block by block.

K-weighting is two biquads (a high-shelf "pre-filter" modelling the head, then
the RLB high-pass); their coefficients are derived for any sample rate from the
analogue prototypes by the bilinear transform, which reproduces the 48 kHz
coefficients printed in the recommendation. The signal is cut into 100 ms
steps; gating blocks are 400 ms (four steps, 75 % overlap); blocks under
-70 LUFS are dropped (absolute gate), then blocks more than 10 LU below the
loudness of the remaining ones (relative gate). Only per-step energies are
kept, so memory grows by a few floats per second of audio.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
SILENCE_LUFS = -math.inf


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads ``[(b, a), (b, a)]`` for ``sample_rate``."""
    # Stage 1: high shelf, +4 dB above ~1.7 kHz.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    if f0 >= sample_rate / 2:
        # The shelf lies above Nyquist, where the bilinear transform turns unstable; below it the gain is ~0 dB.
        b1, a1 = np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])
    else:
        k = math.tan(math.pi * f0 / sample_rate)
        vh = 10.0 ** (gain_db / 20.0)
        vb = vh**0.4996667741545416
        a0 = 1.0 + k / q + k * k
        b1 = np.array([(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
        a1 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    # Stage 2: RLB high-pass at ~38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    # The recommendation's numerator is [1, -2, 1] at 48 kHz, whose passband gain is a0 there; keep that
    # gain at every rate (unscaled, low rates would read up to ~2 dB loud).
    k48 = math.tan(math.pi * f0 / 48000)
    b2 = np.array([1.0, -2.0, 1.0]) * (1.0 + k48 / q + k48 * k48) / a0
    a2 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return [(b1, a1), (b2, a2)]


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights: 1.0 for front channels; for 5.1 (L R C LFE Ls Rs) 1.41 on the surrounds, LFE out."""
    w = np.ones(channels)
    if channels == 6:
        w = np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return w


class LoudnessMeter:
    """Feed ``[frames, channels]`` blocks with :meth:`add`; read :attr:`integrated` and :attr:`peak`."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.filters = k_weighting(sample_rate)
        self._zi = [np.zeros((channels, 2)) for _ in self.filters]
        self._step = max(1, round(sample_rate * 0.1))  # 100 ms
        self._pending = np.zeros((0, channels))
        self._steps: list[np.ndarray] = []  # per-step sum of squares per channel
        self._peak = 0.0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 1:
            block = block[:, None]
        if block.shape[0] == 0:
            return
        self._peak = max(self._peak, float(np.abs(block).max()))
        x = block.T
        for i, (b, a) in enumerate(self.filters):  # filters start at rest; state carries across blocks
            x, self._zi[i] = lfilter(b, a, x, axis=1, zi=self._zi[i])
        data = np.concatenate([self._pending, (x * x).T])
        whole = data.shape[0] // self._step
        if whole:
            self._steps.extend(data[: whole * self._step].reshape(whole, self._step, self.channels).sum(axis=1))
        self._pending = data[whole * self._step :]

    @property
    def peak(self) -> float:
        return self._peak

    @property
    def peak_dbfs(self) -> float:
        return 20.0 * math.log10(self._peak) if self._peak > 0 else -math.inf

    @property
    def integrated(self) -> float:
        """Integrated loudness in LUFS (``-inf`` for silence or audio shorter than one 400 ms block)."""
        if len(self._steps) < 4:
            return SILENCE_LUFS
        steps = np.array(self._steps)  # [n_steps, channels]
        window = self._step * 4
        # Mean square per 400 ms block per channel, blocks every 100 ms.
        csum = np.concatenate([np.zeros((1, self.channels)), np.cumsum(steps, axis=0)])
        z = (csum[4:] - csum[:-4]) / window  # [n_blocks, channels]
        weighted = z @ channel_weights(self.channels)
        with np.errstate(divide="ignore"):
            block_lufs = -0.691 + 10.0 * np.log10(weighted)
        gated = block_lufs > ABSOLUTE_GATE_LUFS
        if not gated.any():
            return SILENCE_LUFS
        relative = -0.691 + 10.0 * math.log10(float(weighted[gated].mean())) + RELATIVE_GATE_LU
        gated &= block_lufs > relative
        if not gated.any():
            return SILENCE_LUFS
        return -0.691 + 10.0 * math.log10(float(weighted[gated].mean()))


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """One-shot helper for ``[frames, channels]`` (or mono ``[frames]``) audio."""
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    meter = LoudnessMeter(sample_rate, channels)
    meter.add(audio)
    return meter.integrated
