"""The MusicGen codebook delay pattern: codebook ``k`` runs ``k`` steps behind codebook 0.

A request's token grid has one column per decoder step. Column 0 holds the start token; the
pattern marks every cell the model must predict with ``-1`` and pins every other cell to the
pad token or to a prompt code. Stereo models interleave left/right codebooks, which share a delay.
"""

from __future__ import annotations

import torch


def delay_span(num_codebooks: int, audio_channels: int) -> int:
    """How many distinct delays there are (codebooks per channel)."""
    return num_codebooks // 2 if audio_channels == 2 else num_codebooks


def build_pattern(
    prompt_codes: torch.Tensor | None, num_codebooks: int, audio_channels: int, total_len: int, pad_token: int
) -> torch.Tensor:
    """The (codebooks, total_len) grid for a request: start token, delayed prompt codes, ``-1`` to predict.

    ``prompt_codes`` (codebooks, frames) are placed after the start token, each codebook shifted by its
    delay; ``total_len`` counts the start token, the prompt and the new steps.
    """
    span = delay_span(num_codebooks, audio_channels)
    grid = torch.full((num_codebooks, total_len), -1, dtype=torch.long)
    inputs = torch.full((num_codebooks, 1), pad_token, dtype=torch.long)
    if prompt_codes is not None and prompt_codes.shape[-1] > 0:
        inputs = torch.cat([inputs, prompt_codes.to(torch.long).cpu()], dim=1)
    seq_len = inputs.shape[1]
    if total_len < 2 * span - 1:
        return grid
    for cb in range(num_codebooks):
        delay = cb // 2 if audio_channels == 2 else cb
        end = min(total_len, seq_len + delay)
        grid[cb, delay:end] = inputs[cb, : end - delay]
    cols = torch.arange(total_len)
    rows = torch.arange(num_codebooks)
    delays = rows // 2 if audio_channels == 2 else rows
    pinned = (cols[None, :] <= delays[:, None]) | (cols[None, :] >= delays[:, None] + total_len - span + 1)
    return torch.where(pinned, torch.full_like(grid, pad_token), grid)


def first_free_column(pattern: torch.Tensor) -> int:
    """The first column with a cell to predict (codebook 0 has no delay, so it decides)."""
    free = (pattern[0] == -1).nonzero()
    return int(free[0, 0]) if len(free) else pattern.shape[-1]


def extract_codes(grid: torch.Tensor, audio_channels: int, frames: int | None = None) -> torch.Tensor:
    """Undo the delay: (codebooks, columns) grid -> (codebooks, frames) codes, frame ``t`` of codebook
    with delay ``d`` sitting in column ``t + d + 1``."""
    num_codebooks, total_len = grid.shape
    span = delay_span(num_codebooks, audio_channels)
    n = total_len - span if frames is None else frames
    out = torch.empty((num_codebooks, max(n, 0)), dtype=grid.dtype, device=grid.device)
    for cb in range(num_codebooks):
        delay = cb // 2 if audio_channels == 2 else cb
        out[cb] = grid[cb, delay + 1 : delay + 1 + n]
    return out
