"""Which decoder serves a model: ``BEATFLOW_GENERATOR_BACKEND`` (``auto``, ``engine`` or ``generate``).

A *backend* is the name of a decoder implementation: ``generate``
(:class:`~beatflow.generator.hf_generate.GenerateDecoder`) or ``engine``
(:class:`~beatflow.generator.engine_decoder.EngineDecoder`); ``auto`` picks one
for the model's device.
"""

from __future__ import annotations

import torch

from beatflow.generator.config import GeneratorSettings
from beatflow.generator.decoders import Decoder
from beatflow.generator.engine_decoder import EngineDecoder
from beatflow.generator.hf_generate import GenerateDecoder
from beatflow.generator.models import LoadedModel

BACKENDS = ("auto", "engine", "generate")


def choose_backend(name: str, device: torch.device) -> tuple[str, str]:
    """The backend ``name`` selects on ``device`` and why: ``auto`` takes the decode engine where it is
    measured faster with equal output, ``generate()`` elsewhere until it is measured there."""
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name, "set by BEATFLOW_GENERATOR_BACKEND"
    if device.type == "cpu":
        return "engine", (
            "auto: on the CPU the engine is measured faster than generate() (bench/generate_engine.py: "
            "1.3-2.4x on the tiny preset) with greedy tokens equal to generate()'s"
        )
    return "generate", (
        f"auto: the engine is not yet measured on {device.type} (make gpu-check); "
        "generate() until it is; set BEATFLOW_GENERATOR_BACKEND=engine to choose it"
    )


def make_decoder(backend: str, lm: LoadedModel, *, window_s: float | None = None) -> Decoder:
    """The decoder ``backend`` selects for ``lm`` (see ``choose_backend``).

    The engine is sized for ``window_s`` (None: the configured ``generator_max_window_s``): a
    window's prompt plus its new frames is the longest request the worker sends.
    """
    name, _ = choose_backend(backend, lm.device)
    if name == "generate":
        return GenerateDecoder(lm)
    if name == "engine":
        if window_s is None:
            window_s = GeneratorSettings().generator_max_window_s
        return EngineDecoder(lm, window_s=window_s)
    raise AssertionError(name)
