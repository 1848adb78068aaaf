"""A fast MusicGen decode engine: static KV cache, continuous batching, streaming, CUDA graphs.

Use :class:`DecodeEngine` on a loaded ``MusicgenForConditionalGeneration`` (or the melody model)::

    engine = DecodeEngine(model, tokenizer, EngineConfig(max_slots=16, max_new_tokens=1503))
    engine.start()  # step loop on a background thread (or drive engine.step() yourself)
    handle = engine.submit(EngineRequest(max_new_tokens=753, text="lofi beat", seed=1, on_chunk=publish))
    result = handle.result()  # codes (codebooks, frames), audio (channels, samples)

The service uses it through ``beatflow.generator.engine_decoder.EngineDecoder`` (the
``Decoder`` interface): set ``BEATFLOW_GENERATOR_BACKEND=engine``.

Layout: ``decoder`` (the step and prefill on the model's own modules), ``conditioning`` (text,
melody, continuation inputs), ``delay`` (codebook delay pattern), ``sampling`` (guidance, top-k/p,
counter-based randomness), ``graphs`` (CUDA graphs), ``engine`` (slots and the loop). Codes become
audio through ``beatflow.generator.codec_audio`` (codec decode, streamed chunks), which the
``generate()`` path shares.
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
