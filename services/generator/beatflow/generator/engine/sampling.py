"""Token choice on the device, batched over requests with their own settings, with no host sync.

Randomness is counter based: the uniform number for (request seed, grid column, codebook) is a
hash of those integers. It needs no generator state, so a request draws the same numbers alone or
in any batch, run to run, and the whole step can be captured in a CUDA graph. A token is drawn by
inverting the cumulative distribution (in vocabulary order) of the filtered probabilities.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (xor-shift-multiply), computed exactly in int64."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    x = x ^ (x >> 16)
    return x


def split_seed(seed: int) -> tuple[int, int]:
    """A 64-bit seed as two 32-bit halves (any Python int is folded to 64 bits first)."""
    seed &= (1 << 64) - 1
    return seed & _MASK32, (seed >> 32) & _MASK32


def counter_uniform(
    seed_lo: torch.Tensor, seed_hi: torch.Tensor, counter: torch.Tensor, num_codebooks: int
) -> torch.Tensor:
    """Uniform [0, 1) numbers (rows, codebooks) from per-row seeds and step counters."""
    cb = torch.arange(num_codebooks, device=counter.device, dtype=torch.long)
    h = _mix32(seed_lo[:, None] ^ 0x9E3779B9)
    h = _mix32(h ^ seed_hi[:, None])
    h = _mix32(h ^ (counter[:, None] & _MASK32))
    h = _mix32(h + cb[None, :] * 0x632BE5AB)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def guide(logits: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance: logits (rows, 2, codebooks, vocab) with cond/uncond -> (rows, codebooks, vocab)."""
    cond = logits[:, 0]
    uncond = logits[:, 1]
    guided = uncond + (cond - uncond) * scale[:, None, None]
    return torch.where((scale > 1.0)[:, None, None], guided, cond)


def choose_tokens(
    scores: torch.Tensor,
    greedy: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniform: torch.Tensor,
    sort_width: int,
    nucleus: bool = True,
) -> torch.Tensor:
    """Pick one token per (row, codebook) from float32 scores (rows, codebooks, vocab).

    Rows are independent: what a row picks depends on its own scores, settings and uniform number
    only. ``sort_width`` must be at least every sampling row's ``top_k`` (the vocabulary size when
    any row has top-k off or top-p on); the values it selects are exact, so the width does not
    change any row's result. ``nucleus`` False skips the top-p pass (no row has top-p on).
    """
    rows, books, vocab = scores.shape
    flat = scores.reshape(rows * books, vocab)
    arg = flat.argmax(dim=-1)

    def per_code(t: torch.Tensor) -> torch.Tensor:
        return t[:, None].expand(rows, books).reshape(rows * books)

    x = flat / per_code(temperature)[:, None]
    width = max(1, min(sort_width, vocab))
    top_vals, top_idx = torch.topk(x, width, dim=-1, sorted=True)
    k = per_code(top_k)
    k = torch.where((k <= 0) | (k > width), torch.full_like(k, width), k)
    kth = top_vals.gather(-1, (k - 1)[:, None])
    keep = x >= kth
    probs = torch.softmax(x.masked_fill(~keep, float("-inf")), dim=-1)

    if nucleus:
        p = per_code(top_p)
        sorted_probs = probs.gather(-1, top_idx)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        kept_sorted = (before < p[:, None]) | (p[:, None] <= 0) | (p[:, None] >= 1)
        kept_sorted[:, 0] = True
        last_kept = kept_sorted.to(torch.long).sum(dim=-1, keepdim=True) - 1
        p_floor = top_vals.gather(-1, last_kept)
        probs = probs.masked_fill(x < p_floor, 0.0)

    cdf = probs.cumsum(dim=-1)
    target = uniform.reshape(-1, 1) * cdf[:, -1:]
    picked = torch.searchsorted(cdf, target, right=True).clamp_(max=vocab - 1).squeeze(-1)
    out = torch.where(per_code(greedy), arg, picked)
    return out.view(rows, books)
