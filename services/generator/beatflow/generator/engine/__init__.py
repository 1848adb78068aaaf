"""A fast MusicGen decode engine: static KV cache, continuous batching, streaming, CUDA graphs.

Use :class:`DecodeEngine` on a loaded ``MusicgenForConditionalGeneration`` (or the melody model);
:class:`EngineBackend` adapts it to the generator service's backend protocol.
"""

from beatflow.generator.engine.engine import DecodeEngine, EngineConfig, RequestHandle, half_dtype_for
from beatflow.generator.engine.types import AudioChunk, EngineRequest, EngineResult, SamplingParams

__all__ = [
    "AudioChunk",
    "DecodeEngine",
    "EngineConfig",
    "EngineRequest",
    "EngineResult",
    "RequestHandle",
    "SamplingParams",
    "half_dtype_for",
]
