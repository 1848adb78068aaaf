"""The engine as the service's Decoder: same codes as the generate() decoder, shared batches."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from beatflow.generator.decoder_choice import make_decoder
from beatflow.generator.decoders import Decoder, DecodeRequest, Sampling
from beatflow.generator.engine_decoder import EngineDecoder
from beatflow.generator.hf_generate import GenerateDecoder
from beatflow.generator.models import LoadedModel, load_model

GREEDY = Sampling(greedy=True)


@pytest.fixture(scope="module")
def lm() -> LoadedModel:
    return load_model("tiny")


@pytest.fixture(scope="module")
def decoder(lm: LoadedModel) -> Any:
    b = EngineDecoder(lm, slots=4, window_s=2.0)
    yield b
    b.close()


def test_make_decoder_builds_the_engine(lm: LoadedModel) -> None:
    b = make_decoder("engine", lm)
    try:
        assert isinstance(b, Decoder) and isinstance(b, EngineDecoder)
        assert b.continuous and b.name == "engine"
    finally:
        assert isinstance(b, EngineDecoder)
        b.close()


def test_greedy_codes_equal_the_generate_decoder(lm: LoadedModel, decoder: EngineDecoder) -> None:
    prompt = lm.encode_audio(0.2 * torch.sin(torch.arange(6400) / 9.0)[None])
    reqs = [
        DecodeRequest("a", "dub techno", new_frames=20, seed=1, sampling=GREEDY),
        DecodeRequest("b", "continue this", new_frames=15, seed=2, sampling=GREEDY, prompt_codes=prompt),
        DecodeRequest("c", "no guidance", new_frames=10, seed=3, sampling=GREEDY, guidance_scale=1.0),
    ]
    ref = GenerateDecoder(lm).decode(reqs)
    got = decoder.decode(reqs)
    for r, g in zip(ref, got, strict=True):
        assert g.codes is not None and r.codes is not None
        assert g.codes.shape == r.codes.shape
        assert torch.equal(g.codes, r.codes)
        assert g.steps == r.steps
    assert got[0].batch_size == 3


def test_melody_chroma_codes_equal_the_generate_decoder() -> None:
    lm = load_model("tiny-melody")
    chroma = torch.zeros(50, 12)
    chroma[torch.arange(50), torch.arange(50) % 12] = 1.0
    reqs = [
        DecodeRequest("m", "hummed", new_frames=12, seed=5, sampling=GREEDY, chroma=chroma),
        DecodeRequest("n", "hummed", new_frames=12, seed=5, sampling=GREEDY),
    ]
    b = EngineDecoder(lm, slots=2, window_s=1.0)
    try:
        got = b.decode(reqs)
    finally:
        b.close()
    ref = GenerateDecoder(lm).decode(reqs)
    for r, g in zip(ref, got, strict=True):
        assert g.codes is not None and r.codes is not None
        assert torch.equal(g.codes, r.codes)


def test_progress_frames_and_cancel(decoder: EngineDecoder) -> None:
    progress: dict[str, list[tuple[int, int]]] = {"x": [], "y": []}
    frames: dict[str, list[tuple[int, torch.Tensor]]] = {"x": [], "y": []}

    def on_step(rid: str, done: int, total: int) -> None:
        progress[rid].append((done, total))

    def on_frames(rid: str, start: int, codes: torch.Tensor) -> None:
        frames[rid].append((start, codes))

    def is_cancelled(rid: str) -> bool:
        return rid == "y" and len(progress["y"]) >= 5

    reqs = [
        DecodeRequest("x", "sampled", new_frames=40, seed=11, sampling=Sampling(top_k=30)),
        DecodeRequest("y", "cancelled", new_frames=40, seed=12),
    ]
    x, y = decoder.decode(reqs, on_step=on_step, is_cancelled=is_cancelled, on_frames=on_frames)
    assert y.cancelled and y.codes is None and y.steps == 5
    assert not x.cancelled and x.codes is not None and x.codes.shape == (4, 40)
    assert progress["x"] == [(i, 43) for i in range(1, 44)]
    starts = [s for s, _ in frames["x"]]
    assert starts[0] == 0 and len(starts) > 1
    joined = torch.cat([c for _, c in frames["x"]], dim=1)
    assert torch.equal(joined, x.codes)
    again = decoder.decode(reqs[:1])[0]
    assert again.codes is not None and torch.equal(again.codes, x.codes)  # same seed, same codes


def test_concurrent_calls_share_the_running_batch(decoder: EngineDecoder) -> None:
    results: dict[str, Any] = {}
    long_started = threading.Event()

    def long_call() -> None:
        def on_step(rid: str, done: int, total: int) -> None:
            long_started.set()
            if done == 2:  # hold the engine (callbacks run on its thread) until the short call is queued
                for _ in range(3000):
                    if decoder.engine.waiting:
                        break
                    time.sleep(0.01)

        results["long"] = decoder.decode([DecodeRequest("long", "long one", new_frames=90, seed=21)], on_step=on_step)[
            0
        ]

    def short_call() -> None:
        long_started.wait(30)
        results["short"] = decoder.decode([DecodeRequest("short", "short one", new_frames=5, seed=22)])[0]
        results["long_done_when_short_finished"] = "long" in results

    threads = [threading.Thread(target=long_call), threading.Thread(target=short_call)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results["short"].batch_size == 2  # it joined the running long request
    assert results["long_done_when_short_finished"] is False  # and did not wait for it
    assert results["long"].codes.shape == (4, 90)
