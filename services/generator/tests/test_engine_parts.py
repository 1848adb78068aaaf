"""The engine's pieces on their own: delay pattern, counter-based sampling, codec look-ahead."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from beatflow.generator.codec_audio import CodecDecoder
from beatflow.generator.engine.delay import build_pattern, extract_codes, first_free_column
from beatflow.generator.engine.sampling import choose_tokens, counter_uniform, guide, split_seed
from beatflow.generator.presets import build_preset_model


@pytest.fixture(scope="module")
def tiny() -> Any:
    return build_preset_model("tiny")


@pytest.fixture(scope="module")
def tiny_stereo() -> Any:
    return build_preset_model("tiny-stereo")


@pytest.mark.parametrize("stereo", [False, True])
@pytest.mark.parametrize("prompt_frames", [0, 3, 9])
def test_pattern_matches_transformers(stereo: bool, prompt_frames: int, tiny: Any, tiny_stereo: Any) -> None:
    model = tiny_stereo if stereo else tiny
    k = model.decoder.config.num_codebooks
    channels = 2 if stereo else 1
    prompt = torch.randint(0, 2048, (k, prompt_frames))
    total = 1 + prompt_frames + 20
    ids = torch.cat([torch.full((k, 1), 2048), prompt], dim=1)
    first_ids, ref = model.decoder.build_delay_pattern_mask(ids, pad_token_id=2048, max_length=total)
    ours = build_pattern(prompt if prompt_frames else None, k, channels, total, 2048)
    assert torch.equal(ours, ref)
    assert first_free_column(ours) == first_ids.shape[-1] == 1 + prompt_frames
    filled = torch.where(ours == -1, torch.randint(0, 2048, ours.shape), ours)
    codes = extract_codes(filled, channels)
    assert codes.shape == (k, total - k // channels)
    assert torch.equal(codes[:, :prompt_frames], prompt)


def test_counter_uniform_is_a_pure_function_of_seed_step_and_codebook() -> None:
    lo, hi = split_seed(123456789012345)
    seed_lo = torch.tensor([lo, lo, lo + 1])
    seed_hi = torch.tensor([hi, hi, hi])
    steps = torch.tensor([5, 6, 5])
    u = counter_uniform(seed_lo, seed_hi, steps, 4)
    assert u.shape == (3, 4) and bool(((u >= 0) & (u < 1)).all())
    assert torch.equal(u[0], counter_uniform(seed_lo[:1], seed_hi[:1], steps[:1], 4)[0])  # batch-independent
    assert len({round(float(x), 6) for x in u.flatten()}) == 12  # steps, seeds and codebooks all differ
    many = counter_uniform(torch.full((4000,), lo), torch.full((4000,), hi), torch.arange(4000), 4)
    assert abs(float(many.mean()) - 0.5) < 0.02
    assert split_seed(-1) == (0xFFFFFFFF, 0xFFFFFFFF)


def _choose(scores: torch.Tensor, u: torch.Tensor, **kw: Any) -> torch.Tensor:
    rows = scores.shape[0]

    def full(value: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.full((rows,), value, dtype=dtype)

    return choose_tokens(
        scores,
        full(kw.get("greedy", False), torch.bool),
        full(kw.get("temperature", 1.0), torch.float32),
        full(kw.get("top_k", 0), torch.long),
        full(kw.get("top_p", 0.0), torch.float32),
        u,
        kw.get("width", scores.shape[-1]),
    )


def test_top_k_top_p_and_greedy_keep_to_their_sets() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 2, 100, generator=gen) * 3
    u = torch.rand(64, 2, generator=gen)
    greedy = _choose(scores, u, greedy=True)
    assert torch.equal(greedy, scores.argmax(-1))
    top5 = _choose(scores, u, top_k=5)
    allowed = scores.topk(5, dim=-1).indices
    assert bool((allowed == top5[..., None]).any(-1).all())
    assert torch.equal(top5, _choose(scores, u, top_k=5, width=5))  # the sort width does not matter
    assert torch.equal(top5, _choose(scores, u, top_k=5, width=37))
    nucleus = _choose(scores, u, top_p=0.5)
    probs = scores.softmax(-1)
    sorted_p, order = probs.sort(-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p
    rank = (order == nucleus[..., None]).float().argmax(-1)
    assert bool((before.gather(-1, rank[..., None]) < 0.5).all())
    # u near 0 picks the first allowed token in vocabulary order, u near 1 the last
    low = _choose(scores, torch.zeros(64, 2), top_k=5)
    high = _choose(scores, torch.full((64, 2), 0.999999), top_k=5)
    assert torch.equal(low, allowed.min(-1).values) and torch.equal(high, allowed.max(-1).values)


def test_sampling_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))[None, None].expand(20000, 1, 4).contiguous()
    u = counter_uniform(
        torch.zeros(20000, dtype=torch.long), torch.zeros(20000, dtype=torch.long), torch.arange(20000), 1
    )
    picks = _choose(logits, u).flatten()
    freq = torch.bincount(picks, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.02)
    hot = _choose(logits, u, temperature=100.0).flatten()
    assert torch.allclose(torch.bincount(hot, minlength=4).float() / 20000, torch.full((4,), 0.25), atol=0.02)


def test_guidance_combines_cond_and_uncond() -> None:
    cond, uncond = torch.randn(3, 4, 10), torch.randn(3, 4, 10)
    logits = torch.stack([cond, uncond], dim=1)
    out = guide(logits, torch.tensor([3.0, 1.0, 0.0]))
    assert torch.equal(out[0], uncond[0] + (cond[0] - uncond[0]) * 3.0)
    assert torch.equal(out[1], cond[1]) and torch.equal(out[2], cond[2])


def test_codec_lookahead_covers_what_the_decoder_sees(tiny: Any) -> None:
    codec = CodecDecoder(tiny)
    assert 1 <= codec.lookahead <= 25
    codes = torch.randint(0, 2048, (4, 60), generator=torch.Generator().manual_seed(1))
    full = codec.decode(codes)
    for cut in (codec.lookahead + 5, 31, 47):
        prefix = codec.decode(codes[:, :cut])
        stable = (cut - codec.lookahead) * codec.hop
        assert abs(prefix[:, :stable] - full[:, :stable]).max() < 1e-5
