"""The decode engine computes the same function as transformers' generate(), batched and streamed.

All on the CPU with the tiny presets in float32: greedy tokens equal generate()'s for text, melody,
continuation and stereo inputs; a request's tokens do not depend on what else runs beside it, when
it joins, or who gets cancelled; streamed chunks concatenate to the final audio.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from beatflow.generator.engine import (
    AudioChunk,
    DecodeEngine,
    EngineConfig,
    EngineRequest,
    EngineResult,
    SamplingParams,
)
from beatflow.generator.engine.delay import build_pattern, extract_codes
from beatflow.generator.presets import build_byte_tokenizer, build_preset_model

GREEDY = SamplingParams(greedy=True, guidance_scale=3.0)


class _LastIds(StoppingCriteria):
    """Keeps the token grid generate() has built so far (it is called after every step)."""

    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.ids = input_ids.clone()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def reference(model: Any, prompt_codes: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, np.ndarray]:
    """generate()'s codes (codebooks, frames) and audio (channels, samples) under greedy decoding."""
    last = _LastIds()
    audio = model.generate(do_sample=False, stopping_criteria=StoppingCriteriaList([last]), **kwargs)
    assert last.ids is not None
    grid = last.ids
    k = model.decoder.config.num_codebooks
    channels = model.decoder.config.audio_channels
    pattern = build_pattern(prompt_codes, k, channels, grid.shape[1], model.generation_config.pad_token_id)
    grid = torch.where(pattern == -1, grid, pattern)
    return extract_codes(grid, channels), audio[0].numpy()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_byte_tokenizer()


@pytest.fixture(scope="module")
def tiny() -> Any:
    return build_preset_model("tiny")


@pytest.fixture(scope="module")
def engine(tiny: Any, tokenizer: Any) -> DecodeEngine:
    return DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=4, max_new_tokens=80, max_prompt_frames=16))


def _solo(engine: DecodeEngine, req: EngineRequest) -> EngineResult:
    return engine.generate([req])[0]


def _req(text: str, steps: int, sampling: SamplingParams = GREEDY, seed: int | None = 7, **kw: Any) -> EngineRequest:
    return EngineRequest(max_new_tokens=steps, text=text, sampling=sampling, seed=seed, **kw)


def test_text_greedy_equals_generate(tiny: Any, tokenizer: Any, engine: DecodeEngine) -> None:
    inputs = tokenizer(["lofi hip hop with warm keys"], return_tensors="pt")
    ref_codes, ref_audio = reference(tiny, **inputs, guidance_scale=3.0, max_new_tokens=40)
    res = _solo(engine, _req("lofi hip hop with warm keys", 40))
    assert res.codes.shape == (4, 37)
    assert torch.equal(res.codes, ref_codes)
    np.testing.assert_allclose(res.audio, ref_audio, atol=1e-6)


def test_text_greedy_without_guidance_equals_generate(tiny: Any, tokenizer: Any, engine: DecodeEngine) -> None:
    inputs = tokenizer(["ambient drone"], return_tensors="pt")
    ref_codes, _ = reference(tiny, **inputs, guidance_scale=1.0, max_new_tokens=20)
    res = _solo(engine, _req("ambient drone", 20, SamplingParams(greedy=True, guidance_scale=1.0)))
    assert torch.equal(res.codes, ref_codes)


def test_continuation_greedy_equals_generate(tiny: Any, tokenizer: Any, engine: DecodeEngine) -> None:
    t = torch.arange(32000 // 5) / 32000
    prompt = (0.3 * torch.sin(2 * torch.pi * 220 * t))[None]
    inputs = tokenizer(["keep going"], return_tensors="pt")
    prompt_codes = tiny.audio_encoder.encode(input_values=prompt[None]).audio_codes[0, 0]
    ref_codes, ref_audio = reference(
        tiny, prompt_codes=prompt_codes, **inputs, input_values=prompt[None], guidance_scale=3.0, max_new_tokens=24
    )
    res = _solo(engine, _req("keep going", 24, prompt_audio=prompt))
    assert res.codes.shape == ref_codes.shape == (4, prompt_codes.shape[-1] + 24 - 3)
    assert torch.equal(res.codes[:, :5], prompt_codes[:, :5])  # the prompt leads the output
    assert torch.equal(res.codes, ref_codes)
    np.testing.assert_allclose(res.audio, ref_audio, atol=1e-6)


def test_melody_greedy_equals_generate(tokenizer: Any) -> None:
    model = build_preset_model("tiny-melody")
    eng = DecodeEngine(model, tokenizer, EngineConfig(max_slots=2, max_new_tokens=40))
    chroma = torch.rand(1, 40, 12, generator=torch.Generator().manual_seed(3))
    inputs = tokenizer(["hummed tune"], return_tensors="pt")
    ref_codes, _ = reference(model, **inputs, input_features=chroma, guidance_scale=3.0, max_new_tokens=30)
    res = _solo(eng, _req("hummed tune", 30, melody_chroma=chroma[0]))
    assert torch.equal(res.codes, ref_codes)
    plain_codes, _ = reference(model, **inputs, guidance_scale=3.0, max_new_tokens=30)
    plain = _solo(eng, _req("hummed tune", 30))
    assert torch.equal(plain.codes, plain_codes)
    assert not torch.equal(plain.codes, res.codes)  # the melody really conditions


def test_stereo_greedy_equals_generate(tokenizer: Any) -> None:
    model = build_preset_model("tiny-stereo")
    eng = DecodeEngine(model, tokenizer, EngineConfig(max_slots=2, max_new_tokens=40))
    inputs = tokenizer(["wide pads"], return_tensors="pt")
    ref_codes, ref_audio = reference(model, **inputs, guidance_scale=3.0, max_new_tokens=24)
    res = _solo(eng, _req("wide pads", 24))
    assert res.codes.shape == (8, 21)
    assert torch.equal(res.codes, ref_codes)
    assert res.audio.shape == ref_audio.shape
    np.testing.assert_allclose(res.audio, ref_audio, atol=1e-6)


MIXED = [
    _req("techno", 50, SamplingParams(top_k=250, temperature=1.0, guidance_scale=3.0), seed=1),
    _req("jazz trio", 12, SamplingParams(top_k=50, temperature=0.7, guidance_scale=2.0), seed=2),
    _req("lofi", 33, GREEDY, seed=3),
    _req("orchestral swell", 27, SamplingParams(top_k=0, top_p=0.9, temperature=1.3, guidance_scale=1.0), seed=4),
]


def _copy(req: EngineRequest, **kw: Any) -> EngineRequest:
    fields = {k: getattr(req, k) for k in ("max_new_tokens", "text", "sampling", "seed")}
    fields.update(kw)
    return EngineRequest(**fields)


def test_batched_requests_equal_their_solo_runs(engine: DecodeEngine) -> None:
    solo = [_solo(engine, _copy(r)) for r in MIXED]
    batch = engine.generate([_copy(r) for r in MIXED])
    for s, b, r in zip(solo, batch, MIXED, strict=True):
        assert b.steps == r.max_new_tokens
        assert torch.equal(s.codes, b.codes)
        np.testing.assert_array_equal(s.audio, b.audio)
    # the settings matter: different seeds and sampling give different music
    assert not torch.equal(batch[0].codes[:, :9], batch[1].codes[:, :9])


def test_more_requests_than_slots_queue_and_short_ones_finish_first(engine: DecodeEngine) -> None:
    finished_at: dict[str, int] = {}
    reqs = []
    for i, steps in enumerate([60, 8, 60, 8, 8, 60]):
        req = _req(f"song {i}", steps, SamplingParams(top_k=20), seed=100 + i)
        req.request_id = str(i)
        reqs.append(req)
    start = engine.steps_run
    handles = [engine.submit(r) for r in reqs]
    while not all(h.done() for h in handles):
        engine.step()
        for h in handles:
            if h.done() and h.request.request_id not in finished_at:
                finished_at[h.request.request_id] = engine.steps_run - start
    # four slots: the two short ones beside two long ones finish after 8 steps, and the queued short one
    # takes the first free slot at once instead of waiting for a long one to drain
    assert finished_at["1"] == 8 and finished_at["3"] == 8
    assert finished_at["4"] == 16
    assert max(finished_at.values()) <= 8 + 60
    for req, h in zip(reqs, handles, strict=True):
        assert torch.equal(h.result().codes, _solo(engine, _copy(req)).codes)


def test_request_joining_a_running_batch_equals_its_solo_run(engine: DecodeEngine) -> None:
    long = _copy(MIXED[0])
    joiner = _copy(MIXED[3])
    h_long = engine.submit(long)
    for _ in range(17):
        engine.step()
    assert engine.running == 1
    h_join = engine.submit(joiner)
    engine.step()
    assert engine.running == 2  # joined at the next step boundary, without waiting for the batch to drain
    while not (h_long.done() and h_join.done()):
        engine.step()
    assert torch.equal(h_long.result().codes, _solo(engine, _copy(MIXED[0])).codes)
    assert torch.equal(h_join.result().codes, _solo(engine, _copy(MIXED[3])).codes)


def test_cancelled_request_leaves_the_batch_and_others_are_unaffected(engine: DecodeEngine) -> None:
    progress: list[tuple[int, int]] = []
    flag = {"cancel": False}
    a = _copy(MIXED[0], on_progress=lambda d, t: progress.append((d, t)), is_cancelled=lambda: flag["cancel"])
    b = _copy(MIXED[2])
    c = _copy(MIXED[1])
    ha, hb, hc = engine.submit(a), engine.submit(b), engine.submit(c)
    for _ in range(10):
        engine.step()
    flag["cancel"] = True  # through the request's own cancel check
    hc.cancel()  # through the handle
    engine.step()
    assert ha.done() and hc.done() and not hb.done()
    assert ha.result().cancelled and hc.result().cancelled
    assert ha.result().steps == 10
    assert progress == [(i, 50) for i in range(1, 11)]
    assert engine.running == 1
    while not hb.done():
        engine.step()
    assert not hb.result().cancelled
    assert torch.equal(hb.result().codes, _solo(engine, _copy(MIXED[2])).codes)
    # the partial codes of the cancelled request are what its solo run made so far
    full = _solo(engine, _copy(MIXED[0])).codes
    part = ha.result().codes
    assert part.shape[-1] > 0 and torch.equal(part, full[:, : part.shape[-1]])


def test_cancel_before_start(engine: DecodeEngine) -> None:
    h = engine.submit(_req("never", 10))
    h.cancel()
    engine.step()
    assert h.done() and h.result().cancelled and h.result().steps == 0


def test_same_seed_same_tokens_different_seed_different_tokens(tiny: Any, tokenizer: Any) -> None:
    sampling = SamplingParams(top_k=250, temperature=1.0, guidance_scale=3.0)
    first = DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=2, max_new_tokens=40))
    second = DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=3, max_new_tokens=40))
    a = first.generate([_req("drum and bass", 30, sampling, seed=1234)])[0]
    b = second.generate([_req("drum and bass", 30, sampling, seed=1234)])[0]
    c = second.generate([_req("drum and bass", 30, sampling, seed=1235)])[0]
    assert a.seed == 1234
    assert torch.equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not torch.equal(a.codes, c.codes)
    unseeded = second.generate([_req("drum and bass", 30, sampling, seed=None)])[0]
    assert unseeded.seed is not None
    again = second.generate([_req("drum and bass", 30, sampling, seed=unseeded.seed)])[0]
    assert torch.equal(unseeded.codes, again.codes)


def test_streamed_chunks_concatenate_to_the_final_audio(engine: DecodeEngine) -> None:
    chunks: list[AudioChunk] = []
    steps_at_chunk: list[int] = []
    done = {"steps": 0}

    def on_progress(d: int, t: int) -> None:
        done["steps"] = d

    def on_chunk(chunk: AudioChunk) -> None:
        chunks.append(chunk)
        steps_at_chunk.append(done["steps"])

    req = _req("streamed", 78, SamplingParams(top_k=100), seed=9, on_chunk=on_chunk, on_progress=on_progress)
    req.chunk_seconds = 0.2
    other = _req("beside it", 40, SamplingParams(top_k=100), seed=10)
    res, _ = engine.generate([req, other])
    assert len(chunks) >= 3
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert steps_at_chunk[0] < 78  # audio arrived while the request was still decoding
    starts = np.cumsum([0] + [c.samples.shape[-1] for c in chunks[:-1]])
    assert [c.start_sample for c in chunks] == list(starts)
    joined = np.concatenate([c.samples for c in chunks], axis=-1)
    np.testing.assert_array_equal(joined, res.audio)
    # and chunked decoding gives the audio a full decode of the codes gives
    full = engine.codec.decode(res.codes)
    assert full.shape == res.audio.shape == (1, 75 * engine.codec.hop)
    np.testing.assert_allclose(res.audio, full, atol=1e-5)
    assert torch.equal(res.codes, _solo(engine, _copy(req)).codes)


def test_background_loop_serves_concurrent_submissions(tiny: Any, tokenizer: Any) -> None:
    eng = DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=2, max_new_tokens=30))
    eng.start()
    try:
        handles = [eng.submit(_req(f"bg {i}", 10 + i, SamplingParams(top_k=10), seed=i)) for i in range(3)]
        results = [h.result(timeout=60) for h in handles]
    finally:
        eng.close()
    assert [r.steps for r in results] == [10, 11, 12]
    solo = DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=1, max_new_tokens=30))
    assert torch.equal(results[2].codes, _solo(solo, _req("bg 2", 12, SamplingParams(top_k=10), seed=2)).codes)


def test_invalid_requests_are_refused(engine: DecodeEngine) -> None:
    with pytest.raises(ValueError):
        engine.submit(_req("too long", 1000))
    with pytest.raises(ValueError):
        engine.submit(_req("no whole frame", 3))
    with pytest.raises(ValueError):
        engine.submit(_req("bad", 10, SamplingParams(top_p=1.5)))
    long_prompt = torch.zeros((4, 40), dtype=torch.long)
    h = engine.submit(_req("prompt too long", 10, prompt_codes=long_prompt))
    engine.step()
    with pytest.raises(ValueError):
        h.result(timeout=1)


@pytest.mark.gpu
def test_cuda_graph_engine_on_gpu(tokenizer: Any) -> None:
    model = build_preset_model("tiny", device="cuda")
    eager = DecodeEngine(model, tokenizer, EngineConfig(max_slots=4, max_new_tokens=60, cuda_graphs=False))
    graphed = DecodeEngine(model, tokenizer, EngineConfig(max_slots=4, max_new_tokens=60, cuda_graphs=True))
    # greedy float32: graph replays give generate()'s tokens, alone and in a batch with others
    inputs = tokenizer(["lofi"], return_tensors="pt").to("cuda")
    ref_codes, _ = reference(model, **inputs, guidance_scale=3.0, max_new_tokens=30)
    assert torch.equal(graphed.generate([_req("lofi", 30)])[0].codes, ref_codes)
    assert graphed.use_graphs and graphed._graphs is not None and len(graphed._graphs) > 0
    batch = graphed.generate([_req("lofi", 30), *[_copy(r) for r in MIXED]])
    assert torch.equal(batch[0].codes, ref_codes)
    assert torch.equal(eager.generate([_req("lofi", 30)])[0].codes, ref_codes)
    # sampling: the same seeds give the same tokens run to run
    again = graphed.generate([_req("lofi", 30), *[_copy(r) for r in MIXED]])
    for x, y in zip(batch, again, strict=True):
        assert torch.equal(x.codes, y.codes)


@pytest.mark.gpu
def test_half_precision_engine_runs_on_gpu(tokenizer: Any) -> None:
    from beatflow.generator.engine import half_dtype_for

    model = build_preset_model("tiny", device="cuda")
    dtype = half_dtype_for(torch.device("cuda"))
    eng = DecodeEngine(model, tokenizer, EngineConfig(max_slots=4, max_new_tokens=60, dtype=dtype))
    assert eng.dtype == dtype
    res = eng.generate([_copy(r) for r in MIXED])
    again = eng.generate([_copy(r) for r in MIXED])
    for x, y in zip(res, again, strict=True):
        assert torch.equal(x.codes, y.codes)
        assert np.isfinite(x.audio).all()


def test_engine_shares_the_model_weights(tokenizer: Any) -> None:
    model = build_preset_model("tiny")
    before = {name: p.data_ptr() for name, p in model.named_parameters()}
    eng = DecodeEngine(model, tokenizer, EngineConfig(max_slots=2, max_new_tokens=10, fused_qkv=False))
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == before
    assert eng.view.layers[0] is model.decoder.model.decoder.layers[0]
    assert eng.view.lm_heads[0].weight.data_ptr() == before["decoder.lm_heads.0.weight"]
    # what the engine allocates is its state (caches, grids), none of it a parameter
    state = {t.data_ptr() for t in (*eng.k_cache, *eng.v_cache, eng.seq)}
    assert not state & set(before.values())


def test_fused_projections_are_the_model_weights_not_a_copy(tokenizer: Any) -> None:
    model = build_preset_model("tiny")
    values = {name: p.detach().clone() for name, p in model.named_parameters()}
    eng = DecodeEngine(model, tokenizer, EngineConfig(max_slots=2, max_new_tokens=10, fused_qkv=True))
    assert eng.view.qkv is not None and eng.view.cross_kv_proj is not None
    h = eng.view.info.hidden
    for layer, (qkv, _), (kv, _) in zip(eng.view.layers, eng.view.qkv, eng.view.cross_kv_proj, strict=True):
        attn, cross = layer.self_attn, layer.encoder_attn
        assert qkv.shape == (3 * h, h) and kv.shape == (2 * h, h)
        assert [attn.q_proj.weight.data_ptr(), attn.k_proj.weight.data_ptr(), attn.v_proj.weight.data_ptr()] == [
            qkv[i * h].data_ptr() for i in range(3)
        ]
        assert [cross.k_proj.weight.data_ptr(), cross.v_proj.weight.data_ptr()] == [kv[0].data_ptr(), kv[h].data_ptr()]
    # same values, and no parameter's storage holds more than the parameter: no second copy anywhere
    params = dict(model.named_parameters())
    assert all(torch.equal(params[name], value) for name, value in values.items())
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in params.values()}
    assert sum(storages.values()) == sum(p.numel() * p.element_size() for p in params.values())
    # another engine on the same model reuses the fused weights
    again = DecodeEngine(model, tokenizer, EngineConfig(max_slots=1, max_new_tokens=10, fused_qkv=True))
    assert again.view.qkv is not None and again.view.qkv[0][0] is eng.view.qkv[0][0]


@pytest.mark.parametrize(
    ("fused_qkv", "exact_attention"), [(False, False), (True, False), (False, True)], ids=["previous", "fused", "exact"]
)
def test_each_step_switch_keeps_generate_tokens(
    fused_qkv: bool, exact_attention: bool, tiny: Any, tokenizer: Any
) -> None:
    """Each switch alone (both on is the default every other test runs): greedy float32 tokens equal
    generate()'s, alone (rows at one position: mask-free attention) and beside a request that joined
    later (rows at different positions: masked attention)."""
    inputs = tokenizer(["lofi hip hop with warm keys"], return_tensors="pt")
    ref_codes, _ = reference(tiny, **inputs, guidance_scale=3.0, max_new_tokens=30)
    cfg = EngineConfig(max_slots=2, max_new_tokens=30, fused_qkv=fused_qkv, exact_attention=exact_attention)
    eng = DecodeEngine(tiny, tokenizer, cfg)
    assert eng.view.fused_qkv is fused_qkv
    assert torch.equal(_solo(eng, _req("lofi hip hop with warm keys", 30)).codes, ref_codes)
    early = eng.submit(_req("ambient drone", 20))
    for _ in range(5):
        eng.step()
    late = eng.submit(_req("lofi hip hop with warm keys", 30))
    while not (early.done() and late.done()):
        eng.step()
    assert torch.equal(late.result().codes, ref_codes)


def test_step_switches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EngineConfig().fused_qkv and EngineConfig().exact_attention
    monkeypatch.setenv("BEATFLOW_ENGINE_FUSED_QKV", "0")
    monkeypatch.setenv("BEATFLOW_ENGINE_EXACT_ATTENTION", "off")
    assert not EngineConfig().fused_qkv and not EngineConfig().exact_attention
    monkeypatch.setenv("BEATFLOW_ENGINE_FUSED_QKV", "maybe")
    with pytest.raises(ValueError, match="BEATFLOW_ENGINE_FUSED_QKV"):
        EngineConfig()


def test_a_failing_callback_fails_only_its_request(engine: DecodeEngine) -> None:
    def boom(done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("callback broke")

    bad = engine.submit(_req("bad callback", 10, on_progress=boom))
    good = engine.submit(_copy(MIXED[1]))
    while not (bad.done() and good.done()):
        engine.step()
    with pytest.raises(RuntimeError, match="callback broke"):
        bad.result()
    assert torch.equal(good.result().codes, _solo(engine, _copy(MIXED[1])).codes)


def test_close_fails_what_is_left(tiny: Any, tokenizer: Any) -> None:
    eng = DecodeEngine(tiny, tokenizer, EngineConfig(max_slots=1, max_new_tokens=30))
    running = eng.submit(_req("running", 30))
    queued = eng.submit(_req("queued", 30))
    eng.step()
    eng.close()
    for h in (running, queued):
        with pytest.raises(RuntimeError, match="closed"):
            h.result(timeout=1)
