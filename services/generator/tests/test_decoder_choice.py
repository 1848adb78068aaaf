"""``BEATFLOW_GENERATOR_BACKEND=auto``: the engine where it is measured faster, generate() elsewhere."""

from __future__ import annotations

import pytest
import torch

from beatflow.generator.config import GeneratorSettings
from beatflow.generator.decoder_choice import choose_backend, make_decoder
from beatflow.generator.models import load_model


def test_auto_is_the_default_and_picks_the_engine_on_the_cpu() -> None:
    assert GeneratorSettings().generator_backend == "auto"
    name, why = choose_backend("auto", torch.device("cpu"))
    assert name == "engine" and "measured faster" in why


def test_auto_keeps_generate_on_cuda_until_measured_and_explicit_choices_win() -> None:
    name, why = choose_backend("auto", torch.device("cuda"))
    assert name == "generate" and "gpu-check" in why
    assert choose_backend("generate", torch.device("cpu")) == ("generate", "set by BEATFLOW_GENERATOR_BACKEND")
    assert choose_backend("engine", torch.device("cuda"))[0] == "engine"
    with pytest.raises(ValueError, match="unknown generation backend"):
        choose_backend("fast", torch.device("cpu"))


def test_make_decoder_auto_builds_the_engine_for_a_cpu_model() -> None:
    lm = load_model("tiny", device="cpu")
    decoder = make_decoder("auto", lm, window_s=2.0)
    try:
        assert decoder.name == "engine"
    finally:
        close = getattr(decoder, "close", None)
        if close is not None:
            close()
