"""MusicGen decoding speed: the decode engine against transformers ``generate()``, in one run.

Engine variants (``--variants``) measured side by side: ``previous`` (the engine without the two
step improvements below), ``fused_qkv`` (query/key/value projections as one GEMM), ``exact_attention``
(mask-free attention over exactly the used cache positions when all rows share one), ``both`` (the
default engine), and, on request, ``whole_cache`` (a reference that attends over the whole static
cache). The last variant listed fills the JSON's ``engine_*`` fields.

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
    python bench/generate_engine.py --preset tiny --single-seconds 5 --seconds 5 --concurrency 1,8
    python bench/generate_engine.py --preset small-arch --quick --variants previous,both

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


class WholeCacheEngine(DecodeEngine):
    """Reference only: the step's attention reads the whole static cache (masked) instead of the
    positions in use, to show what reading only the used length saves."""

    def _attention_length(self, used: int) -> int:
        return self.cache_len


def _cell(
    m: dict[str, float], steps: int, audio_s: float, base: dict[str, float] | None, prev: dict[str, float] | None
) -> dict[str, Any]:
    return {
        "wall_s": m["wall_s"],
        "rtf": audio_s / m["wall_s"],
        "step_ms": 1000 * m["wall_s"] / steps,
        "steps_per_s": steps / m["wall_s"],
        "peak_mb": m["peak_mb"],
        "speedup_vs_generate": base["wall_s"] / m["wall_s"] if base else None,
        "speedup_vs_previous": prev["wall_s"] / m["wall_s"] if prev else None,
    }


# Engine variants: the two step improvements of issue 18, each alone and together, against the
# engine without them ("previous") and a reference that attends over the whole static cache.
VARIANTS: dict[str, dict[str, Any]] = {
    "whole_cache": {"fused_qkv": False, "exact_attention": False, "whole_cache": True},
    "previous": {"fused_qkv": False, "exact_attention": False},
    "fused_qkv": {"fused_qkv": True, "exact_attention": False},
    "exact_attention": {"fused_qkv": False, "exact_attention": True},
    "both": {"fused_qkv": True, "exact_attention": True},
}
DEFAULT_VARIANTS = "previous,fused_qkv,exact_attention,both"


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
    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help=f"engine variants, comma-separated, from {','.join(VARIANTS)}; the last is the engine's row",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs (2 s single, 2 s x 1,4 concurrent): minutes for the *-arch presets on a CPU",
    )
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.quick:
        args.single_seconds, args.seconds, args.concurrency = 2.0, 2.0, "1,4"
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"unknown variants {unknown}; choose from {','.join(VARIANTS)}")

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
    # float32 (the baseline as the service runs it today), so it must run first in that case, and
    # the engine variants then run one after another, one engine alive at a time (on a GPU their
    # static caches would otherwise add up in the peak memory). Otherwise generate() and every
    # variant alternate per workload, so all see the same machine load.
    interleave = dtype is None or dtype == model_dtype
    max_steps = max(steps_for(s) for _, _, s in workloads)

    def make_engine(name: str) -> DecodeEngine:
        spec = VARIANTS[name]
        cls = WholeCacheEngine if spec.get("whole_cache") else DecodeEngine
        engine = cls(
            model,
            tokenizer,
            EngineConfig(
                max_slots=max([*concurrency, 1]),
                max_new_tokens=max_steps,
                dtype=dtype,
                cuda_graphs=not args.no_cuda_graphs,
                fused_qkv=spec["fused_qkv"],
                exact_attention=spec["exact_attention"],
            ),
        )
        engine.generate([EngineRequest(max_new_tokens=steps_for(0.2), text="warm up")])
        return engine

    baseline: dict[tuple[str, int], dict[str, float]] = {}
    measured: dict[tuple[str, int], dict[str, dict[str, float]]] = {(kind, n): {} for kind, n, _ in workloads}
    engine_info: dict[str, dict[str, Any]] = {}

    def keep_best(store: dict[Any, dict[str, float]], key: Any, run: dict[str, float]) -> dict[str, float]:
        if key not in store or run["wall_s"] < store[key]["wall_s"]:
            store[key] = run
        return store[key]

    def measure_generate(kind: str, n: int, seconds: float, repeat: int) -> None:
        if n <= args.max_generate_concurrency:
            for _ in range(repeat):
                kept = keep_best(baseline, (kind, n), run_generate(model, tokenizer, n, steps_for(seconds), device))
            print(f"generate {'':15s} {kind:10s} n={n:3d}: {kept['wall_s']:.2f} s", flush=True)

    def measure_engine(name: str, engine: DecodeEngine, kind: str, n: int, seconds: float, repeat: int) -> None:
        for _ in range(repeat):
            kept = keep_best(measured[(kind, n)], name, run_engine(engine, n, steps_for(seconds), device))
        print(f"engine   {name:15s} {kind:10s} n={n:3d}: {kept['wall_s']:.2f} s", flush=True)

    def note(name: str, engine: DecodeEngine) -> None:
        engine_info[name] = {
            "graphs_captured": len(engine._graphs) if engine._graphs is not None else 0,
            "fused_qkv": engine.view.fused_qkv,
            "exact_attention": engine.config.exact_attention,
        }

    run_generate(model, tokenizer, 1, steps_for(0.2), device)  # warm-up
    main_engine: DecodeEngine | None = None
    repeat = max(1, args.repeat)
    if interleave:
        engines = {name: make_engine(name) for name in variants}
        for kind, n, seconds in workloads:
            for _ in range(repeat):  # round robin, so a burst of machine load hits every variant alike
                measure_generate(kind, n, seconds, 1)
                for name, engine in engines.items():
                    measure_engine(name, engine, kind, n, seconds, 1)
        for name, engine in engines.items():
            note(name, engine)
        main_engine = engines[variants[-1]]
    else:
        for kind, n, seconds in workloads:
            measure_generate(kind, n, seconds, repeat)
        for name in variants:
            engine = make_engine(name)
            for kind, n, seconds in workloads:
                measure_engine(name, engine, kind, n, seconds, repeat)
            note(name, engine)
            if name == variants[-1]:
                main_engine = engine
            else:
                engine.close()
                del engine
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    assert main_engine is not None

    rows: list[dict[str, Any]] = []
    for kind, n, seconds in workloads:
        steps = steps_for(seconds)
        audio_s = n * seconds
        base = baseline.get((kind, n))
        cells = measured[(kind, n)]
        prev = cells.get("previous")

        eng = cells[variants[-1]]
        rows.append(
            {
                "workload": kind,
                "requests": n,
                "audio_s_per_request": seconds,
                "steps": steps,
                "engine_variant": variants[-1],
                "engine_wall_s": eng["wall_s"],
                "engine_rtf": audio_s / eng["wall_s"],
                "engine_step_ms": 1000 * eng["wall_s"] / steps,
                "engine_peak_mb": eng["peak_mb"],
                "generate_wall_s": base["wall_s"] if base else None,
                "generate_rtf": audio_s / base["wall_s"] if base else None,
                "generate_step_ms": 1000 * base["wall_s"] / steps if base else None,
                "generate_peak_mb": base["peak_mb"] if base else None,
                "speedup": base["wall_s"] / eng["wall_s"] if base else None,
                "variants": {name: _cell(cells[name], steps, audio_s, base, prev) for name in variants},
            }
        )

    info = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "engine_dtype": str(main_engine.dtype).removeprefix("torch."),
        "generate_dtype": "float32",
        "cuda_graphs": main_engine.use_graphs,
        "order": "alternating per workload" if interleave else "generate() first, then each engine variant",
        "variants": variants,
        "graphs_captured": len(main_engine._graphs) if main_engine._graphs is not None else 0,
        "engine_state_mb": state_mb(main_engine),
        "model_build_s": load_s,
        "memory": "peak CUDA allocation" if device.type == "cuda" else "peak process RSS during the run",
    }
    header = (
        f"{'workload':10s} {'n':>3s} {'audio/req':>9s} {'variant':15s} {'wall s':>8s} {'ms/step':>8s} "
        f"{'steps/s':>8s} {'RTF':>8s} {'x gen':>6s} {'x prev':>6s} {'peak MB':>8s}"
    )
    print()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    print(header)
    print("-" * len(header))

    def fmt(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for r in rows:
        lead = f"{r['workload']:10s} {r['requests']:3d} {r['audio_s_per_request']:8.1f}s"
        lines: list[tuple[str, dict[str, Any]]] = []
        if r["generate_wall_s"] is not None:
            g = {
                "wall_s": r["generate_wall_s"],
                "step_ms": r["generate_step_ms"],
                "steps_per_s": r["steps"] / r["generate_wall_s"],
                "rtf": r["generate_rtf"],
                "speedup_vs_generate": 1.0,
                "speedup_vs_previous": None,
                "peak_mb": r["generate_peak_mb"],
            }
            lines.append(("generate()", g))
        lines += list(r["variants"].items())
        for name, c in lines:
            print(
                f"{lead} {name:15s} {c['wall_s']:8.2f} {c['step_ms']:8.2f} {c['steps_per_s']:8.1f} "
                f"{c['rtf']:8.3g} {fmt(c['speedup_vs_generate'], '5.2f')}x {fmt(c['speedup_vs_previous'], '5.2f')}x "
                f"{c['peak_mb']:8.0f}"
            )
            lead = " " * len(lead)
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent
        / "results"
        / (f"generate_engine-{args.preset}-{device.type}-{time.strftime('%Y%m%dT%H%M%S')}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "engines": engine_info, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
