"""MusicGen decoding speed: the decode engine against transformers ``generate()``, in one run.

Two workloads, both with guidance scale 3 and top-k 250 sampling, audio decoded by the codec:

* ``single``: one request of ``--single-seconds`` of audio (15 s: 753 decoder steps): wall time.
* ``concurrent``: N requests of ``--seconds`` each, all submitted at once (``generate()`` gets them as
  one static batch; the engine as N requests in N slots): aggregate real-time factor
  (N * seconds of audio / wall time), for each N in ``--concurrency``.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` per measurement; on the CPU the peak
resident set size during the measurement (sampled every 5 ms), and the engine's preallocated state.

    python bench/generate_engine.py                      # small-arch on CUDA, tiny on the CPU
    python bench/generate_engine.py --preset tiny --concurrency 1,8,32,64
    python bench/generate_engine.py --preset small-arch --single-seconds 2 --concurrency 1 --seconds 2

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py shadows the standard library's ``queue`` (which torch imports): keep this directory
# off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from beatflow.generator.engine import (  # noqa: E402
    DecodeEngine,
    EngineConfig,
    EngineRequest,
    SamplingParams,
    half_dtype_for,
)
from beatflow.generator.presets import build_byte_tokenizer, build_preset_model  # noqa: E402

PROMPTS = [
    "lofi hip hop beat with warm keys",
    "driving techno with a rolling bassline",
    "acoustic folk guitar and soft vocals",
    "cinematic orchestral swell with brass",
    "funky disco groove with slap bass",
    "ambient drone with evolving pads",
    "drum and bass with chopped breaks",
    "jazz trio with brushed drums",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakRss:
    """Samples the process's resident set size on a thread while a measurement runs."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_mb())


_sampler: _PeakRss | None = None


def _reset_peak(device: torch.device) -> None:
    global _sampler
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _sampler = _PeakRss()


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    assert _sampler is not None
    return _sampler.stop()


def run_generate(model: Any, tokenizer: Any, n: int, steps: int, device: torch.device) -> dict[str, float]:
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    _reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    inputs = tokenizer(texts, padding=True, return_tensors="pt").to(device)
    with torch.inference_mode():
        audio = model.generate(**inputs, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=steps)
    _sync(device)
    wall = time.perf_counter() - start
    assert audio.shape[0] == n
    return {"wall_s": wall, "peak_mb": _peak_mb(device)}


def run_engine(engine: DecodeEngine, n: int, steps: int, device: torch.device) -> dict[str, float]:
    reqs = [
        EngineRequest(
            max_new_tokens=steps,
            text=PROMPTS[i % len(PROMPTS)],
            sampling=SamplingParams(top_k=250, guidance_scale=3.0),
            seed=i,
        )
        for i in range(n)
    ]
    _reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    results = engine.generate(reqs)
    _sync(device)
    wall = time.perf_counter() - start
    assert all(r.audio.shape[-1] > 0 for r in results)
    return {"wall_s": wall, "peak_mb": _peak_mb(device)}


def state_mb(engine: DecodeEngine) -> float:
    tensors = [*engine.k_cache, *engine.v_cache, *(engine.x_k or []), *(engine.x_v or [])]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small-arch" if cuda else "tiny")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--engine-dtype", default="auto", help="auto (bf16/fp16 on CUDA, fp32 on CPU) | float32")
    parser.add_argument("--single-seconds", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="audio per request in the concurrent runs")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--max-generate-concurrency", type=int, default=64, help="skip generate() above this")
    parser.add_argument("--repeat", type=int, default=2 if cuda else 1, help="runs per cell; the best is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    parser.add_argument("--no-cuda-graphs", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    concurrency = [int(c) for c in args.concurrency.split(",") if c]
    t0 = time.perf_counter()
    model = build_preset_model(args.preset, device=device)
    load_s = time.perf_counter() - t0
    tokenizer = build_byte_tokenizer()
    codec_config: Any = model.config.audio_encoder
    frame_rate = float(codec_config.frame_rate)
    span = model.decoder.config.num_codebooks // model.decoder.config.audio_channels

    def steps_for(seconds: float) -> int:
        return round(seconds * frame_rate) + span - 1

    workloads = [("single", 1, args.single_seconds)] + [("concurrent", n, args.seconds) for n in concurrency]
    if args.engine_dtype == "auto":
        dtype = half_dtype_for(device)
    else:
        dtype = getattr(torch, args.engine_dtype)
    model_dtype = next(model.parameters()).dtype
    # The engine converts the decoder in place when its dtype differs; generate() keeps the model's
    # float32 (the baseline as the service runs it today), so it must run first in that case.
    # Otherwise the two alternate per workload, so both see the same machine load.
    interleave = dtype is None or dtype == model_dtype
    max_steps = max(steps_for(s) for _, _, s in workloads)

    def best(fn: Any, *a: Any) -> dict[str, float]:
        runs = [fn(*a) for _ in range(max(1, args.repeat))]
        return min(runs, key=lambda r: r["wall_s"])

    baseline: dict[tuple[str, int], dict[str, float]] = {}

    def measure_generate(kind: str, n: int, seconds: float) -> None:
        if n <= args.max_generate_concurrency:
            baseline[(kind, n)] = best(run_generate, model, tokenizer, n, steps_for(seconds), device)
            print(f"generate {kind:10s} n={n:3d}: {baseline[(kind, n)]['wall_s']:.2f} s", flush=True)

    run_generate(model, tokenizer, 1, steps_for(0.2), device)  # warm-up
    if not interleave:
        for kind, n, seconds in workloads:
            measure_generate(kind, n, seconds)
    engine = DecodeEngine(
        model,
        tokenizer,
        EngineConfig(
            max_slots=max([*concurrency, 1]),
            max_new_tokens=max_steps,
            dtype=dtype,
            cuda_graphs=not args.no_cuda_graphs,
        ),
    )
    engine.generate([EngineRequest(max_new_tokens=steps_for(0.2), text="warm up")])
    rows: list[dict[str, Any]] = []
    for kind, n, seconds in workloads:
        if interleave:
            measure_generate(kind, n, seconds)
        eng = best(run_engine, engine, n, steps_for(seconds), device)
        base = baseline.get((kind, n))
        audio_s = n * seconds
        row = {
            "workload": kind,
            "requests": n,
            "audio_s_per_request": seconds,
            "steps": steps_for(seconds),
            "engine_wall_s": eng["wall_s"],
            "engine_rtf": audio_s / eng["wall_s"],
            "engine_peak_mb": eng["peak_mb"],
            "generate_wall_s": base["wall_s"] if base else None,
            "generate_rtf": audio_s / base["wall_s"] if base else None,
            "generate_peak_mb": base["peak_mb"] if base else None,
            "speedup": base["wall_s"] / eng["wall_s"] if base else None,
        }
        rows.append(row)
        print(f"engine   {kind:10s} n={n:3d}: {eng['wall_s']:.2f} s", flush=True)

    info = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "engine_dtype": str(engine.dtype).removeprefix("torch."),
        "generate_dtype": "float32",
        "cuda_graphs": engine.use_graphs,
        "order": "alternating per workload" if interleave else "generate() first, then the engine",
        "graphs_captured": len(engine._graphs) if engine._graphs is not None else 0,
        "engine_state_mb": state_mb(engine),
        "model_build_s": load_s,
        "memory": "peak CUDA allocation" if device.type == "cuda" else "peak process RSS during the run",
    }
    header = (
        f"{'workload':10s} {'n':>3s} {'audio/req':>9s} {'generate s':>10s} {'engine s':>9s} "
        f"{'gen RTF':>8s} {'eng RTF':>8s} {'speedup':>7s} {'gen MB':>8s} {'eng MB':>8s}"
    )
    print()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    print(header)
    print("-" * len(header))

    def fmt(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for r in rows:
        print(
            f"{r['workload']:10s} {r['requests']:3d} {r['audio_s_per_request']:8.1f}s "
            f"{fmt(r['generate_wall_s'], '10.2f')} {r['engine_wall_s']:9.2f} {fmt(r['generate_rtf'], '8.3g')} "
            f"{r['engine_rtf']:8.3g} {fmt(r['speedup'], '6.2f')}x {fmt(r['generate_peak_mb'], '8.0f')} "
            f"{r['engine_peak_mb']:8.0f}"
        )
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent
        / "results"
        / (f"generate_engine-{args.preset}-{device.type}-{time.strftime('%Y%m%dT%H%M%S')}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
