"""Generator settings (``BEATFLOW_*`` environment variables)."""

from __future__ import annotations

from beatflow.common.settings import CommonSettings


class GeneratorSettings(CommonSettings):
    port: int = 50051

    # Model loaded once before the service reports SERVING: a hub id
    # (facebook/musicgen-small, -medium, -large, -melody, stereo variants), a
    # local directory saved with save_pretrained, or a preset (tiny,
    # tiny-melody, small-arch, medium-arch, large-arch, melody-arch).
    generator_model: str = "facebook/musicgen-small"
    # Model for hum-to-beat when the main one has no melody conditioning.
    # "auto": tiny-melody beside a tiny* preset, melody-arch beside an *-arch
    # preset, else facebook/musicgen-melody -- and if that cannot be loaded the
    # service still starts, without hum-to-beat (FAILED_PRECONDITION).
    # "" or "none": no melody model. Anything else must load.
    generator_melody_model: str = "auto"
    generator_device: str = "auto"  # auto | cpu | cuda | cuda:N
    generator_dtype: str = "auto"  # auto (float32) | float32 | float16 | bfloat16
    # If a model cannot be loaded, log why and serve the random-weight `tiny`
    # preset (tiny-melody for the melody model) instead of refusing to start.
    generator_fallback_tiny: bool = False
    # Decoder implementation (backend): "generate" (transformers generate(), static batches),
    # "engine" (the continuous-batching decode engine) or "auto": the engine
    # where it is measured faster with equal output (the CPU), generate()
    # elsewhere until measured (CUDA). The choice and why: start-up log and GetModelInfo.
    generator_backend: str = "auto"
    generator_torch_threads: int = 0  # 0: torch's default

    # Batching: a worker claims up to max_batch jobs, waiting at most
    # max_wait_ms after the first for more, then decodes compatible ones
    # together (variations count as rows of the batch).
    generator_max_batch: int = 8
    generator_max_wait_ms: int = 100
    generator_run_worker: bool = True  # False: this replica serves gRPC only

    # Long pieces: windows of max_window_s; each next window is prompted with
    # the last context_s seconds of the piece so far.
    generator_max_window_s: float = 30.0
    generator_context_s: float = 10.0

    # Limits, checked at submit time (INVALID_ARGUMENT).
    generator_max_duration_s: float = 300.0
    generator_default_duration_s: float = 10.0
    generator_max_prompt_chars: int = 2000
    generator_max_variations: int = 4
    generator_max_upload_bytes: int = 64 * 1024 * 1024
    generator_max_upload_s: float = 300.0  # melody recordings and continuation prompts
    generator_max_prompt_audio_s: float = 20.0  # continuation prompt (must leave room in the window)
    generator_min_melody_s: float = 1.0
    generator_silence_db: float = -60.0  # a melody recording quieter than this is "silent"

    generator_progress_interval_s: float = 0.5
    # Stream the first variation's audio while it decodes, as WAV chunks of about this many
    # seconds on the job's progress stream (JobEvent.chunk_blob). None: 1 s on a GPU, off on the
    # CPU (each chunk decodes the whole prefix so far, which a CPU pays for); 0 disables.
    generator_stream_chunk_s: float | None = None  # progress events while decoding (at most this apart)
