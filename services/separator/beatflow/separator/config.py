"""Separator settings (``BEATFLOW_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from beatflow.common.settings import CommonSettings


class SeparatorSettings(CommonSettings):
    port: int = 50052

    # Model loaded before the service reports SERVING: htdemucs, htdemucs_ft, htdemucs_6s,
    # a name in separator_model_dir, or the presets tiny / htdemucs-arch.
    separator_model: str = "htdemucs"
    # Folder with demucs weights in the layout `demucs --repo` reads (<sig>.th + <name>.yaml).
    # Unset: the usual remote (HuggingFace hub, then the demucs download site).
    separator_model_dir: Path | None = None
    # When the default model cannot be loaded, serve the random-weight `tiny` model instead
    # of refusing to start (`make run` turns this on; production leaves it off).
    separator_fallback_tiny: bool = False
    separator_device: str = "auto"  # auto | cpu | cuda | cuda:N
    separator_torch_threads: int = 0  # 0: torch's default
    # Full-length segments per model pass (no shifts): 0 = auto (8 on CUDA, 1 on the CPU, where
    # batching gains nothing); `make gpu-check` measures 1 against 8 on the GPU.
    separator_segment_batch: int = 0

    # Input limits, checked at submit time where the header allows and again when decoding.
    separator_max_upload_bytes: int = 1024 * 1024 * 1024
    separator_max_duration_s: float = 30 * 60.0
    # AnalyzeAudio runs inline on every upload: a tighter size limit.
    separator_analyze_max_bytes: int = 256 * 1024 * 1024
    # Tempo/key look at most this much audio (from the middle); loudness sees everything.
    separator_analysis_window_s: float = 120.0

    # Job workers in this process (a replica may serve gRPC only).
    separator_run_workers: bool = True
    separator_concurrency: int = 1  # separation jobs at a time (one model, one device)
    separator_analysis_concurrency: int = 2
    separator_heartbeat_s: float = 5.0
    separator_claim_block_ms: int = 1000  # how long a worker waits on an empty queue (and so at shutdown)
    separator_work_dir: Path | None = None  # scratch space for decoded mixes and stems; None: system temp
