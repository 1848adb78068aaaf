"""A fast MusicGen decode engine: static KV cache, continuous batching, streaming, CUDA graphs.

Use :class:`DecodeEngine` on a loaded ``MusicgenForConditionalGeneration`` (or the melody model);
:class:`EngineBackend` adapts it to the generator service's backend protocol.
"""

from beatflow.generator.engine.engine import DecodeEngine, EngineConfig, RequestHandle, half_dtype_for
from beatflow.generator.engine.types import AudioChunk, EngineRequest, EngineResult, SamplingParams


def create_backend(lm: object) -> object:
    """``make_backend("engine", lm)``: the engine as the service's GenerationBackend (imported lazily)."""
    from beatflow.generator.engine.backend import create_backend as make

    return make(lm)  # type: ignore[arg-type]


__all__ = [
    "AudioChunk",
    "DecodeEngine",
    "EngineConfig",
    "EngineRequest",
    "EngineResult",
    "RequestHandle",
    "SamplingParams",
    "create_backend",
    "half_dtype_for",
]
