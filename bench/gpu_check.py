"""GPU readiness in one command: the ``gpu``-marked tests and the benchmarks that matter, one JSON.

Time on a GPU machine is short (minutes) and the machine is bare (no network, its own torch and
transformers), so this runs everything worth knowing in one go, each part under its own deadline,
and writes what it found, failures included, to one JSON file:

* ``gpu_tests``: ``pytest -m gpu`` (the CUDA-graph and half-precision engine tests, demucs on CUDA,
  the GPU memory metric), with pass/fail/skip counts.
* ``generation``: ``bench/generate_engine.py`` (decode engine against plain ``generate()`` in
  float32, its fastest setting): one 15 s request (753 steps) and the aggregate real-time factor at
  1/8/32/64 concurrent requests, peak GPU memory (with ``QUICK``, also the engine without its step
  improvements, under ``rows[].variants``); plus, measured here, the time to
  the first streamed second of audio and whether the engine's greedy float32 tokens equal
  ``generate()``'s.
* ``separation``: ``bench/separate.py`` (the separator's segment loop against plain demucs
  ``apply_model``) on a 3-minute track, real-time factor and peak memory; plus, measured here, the
  largest difference between the two outputs (must be within 1e-3); the loop runs with one segment
  per model pass and with eight (``separator_segment_batch``: auto takes 8 on CUDA).

    make gpu-check                       # CUDA, the *-arch presets (real shapes, random weights)
    make gpu-check DEVICE=cpu QUICK=1    # the same path at toy sizes: CI runs this
    make gpu-wheels                      # wheels the bare GPU machine lacks, into .whl/

With no CUDA device and ``--device cuda`` it stops at once with a message saying so (exit 2). The
JSON goes to ``--out`` (default: ``$OUT/gpu_check.json`` when ``OUT`` is set, else
``bench/results/gpu_check.json``). Exit status 1 when a part failed; its error is in the JSON.
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the standard library's (queue.py): keep it off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(_HERE).parent

# Sizes per mode. "full" is what an H100/H200 should finish in well under 8 minutes.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "preset": "small-arch",
        "single_seconds": 15.0,
        "seconds": 15.0,
        "concurrency": "1,8,32,64",
        "repeat": 2,
        "equal_steps": 150,
        # the engine as it ships; its step improvements one by one cost minutes of GPU time here:
        # bench/generate_engine.py --variants previous,fused_qkv,exact_attention,both measures them
        "engine_variants": "both",
        "first_chunk_seconds": 15.0,
        "separator_model": "htdemucs-arch",
        "separation_seconds": 180.0,
        "equality_seconds": 30.0,
    },
    # "quick" proves the path on a CPU in CI, so its sizes are the least that still exercise each part:
    # a stream just over the one second it times, an equality mix just over one 4 s tiny segment.
    "quick": {
        "preset": "tiny",
        "single_seconds": 0.3,
        "seconds": 0.3,
        "concurrency": "2",
        "repeat": 1,
        "equal_steps": 8,
        "engine_variants": "previous,both",  # each switch alone: bench/generate_engine.py
        "first_chunk_seconds": 1.2,
        "separator_model": "tiny",
        "separation_seconds": 2.0,
        "equality_seconds": 5.0,
    },
}
EQUAL_TOLERANCE = 1e-3
# The files holding ``gpu``-marked tests (named, so that collection imports nothing else: a bare GPU
# machine carries only what these need; tests/test_gpu_check.py keeps this list complete).
GPU_TEST_FILES = [
    "services/generator/tests/test_engine.py",
    "services/separator/tests/test_separation.py",
    "tests/test_metrics_exporter.py",
]


def _run_json(cmd: list[str], out: Path, timeout_s: float) -> dict[str, Any]:
    """Run a bench script that writes JSON to ``out``; its JSON, or why there is none."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    result: dict[str, Any] = {"command": " ".join(cmd[1:]), "wall_s": round(time.perf_counter() - started, 2)}
    if proc.returncode != 0 or not out.exists():
        result["error"] = f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"
        return result
    result.update(json.loads(out.read_text()))
    result["table"] = proc.stdout[-4000:]
    return result


def gpu_tests(device: str, timeout_s: float) -> dict[str, Any]:
    """``pytest -m gpu``: counts from its JUnit report (on a CPU every one of them is skipped)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        cmd += GPU_TEST_FILES
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
        result: dict[str, Any] = {"command": "pytest -m gpu", "exit": proc.returncode}
        result["wall_s"] = round(time.perf_counter() - started, 2)
        if not report.exists():
            result["error"] = (proc.stderr or proc.stdout)[-2000:]
            return result
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        result.update(counts, passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"])
        failed = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
        result["failed"] = failed
        # exit 5: every test deselected or none collected; on a CPU all are skipped (exit 0)
        if proc.returncode not in (0, 5):
            result["error"] = proc.stdout[-3000:]
        return result


def generation_bench(size: dict[str, Any], device: str, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "generate_engine.json"
        cmd = [
            sys.executable,
            "bench/generate_engine.py",
            f"--preset={size['preset']}",
            f"--device={device}",
            f"--single-seconds={size['single_seconds']}",
            f"--seconds={size['seconds']}",
            f"--concurrency={size['concurrency']}",
            f"--repeat={size['repeat']}",
            f"--variants={size['engine_variants']}",
            f"--out={out}",
        ]
        return _run_json(cmd, out, timeout_s)


def generation_checks(size: dict[str, Any], device_name: str) -> dict[str, Any]:
    """Greedy float32 token equality with generate(), and the time to the first streamed second."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from beatflow.generator.engine import DecodeEngine, EngineConfig, EngineRequest, SamplingParams, half_dtype_for
    from beatflow.generator.engine.delay import build_pattern, extract_codes
    from beatflow.generator.presets import build_byte_tokenizer, build_preset_model

    device = torch.device(device_name)
    tokenizer = build_byte_tokenizer()
    model = build_preset_model(size["preset"], device=device)
    steps = int(size["equal_steps"])
    prompt = "lofi hip hop beat with warm keys"

    class _LastIds(StoppingCriteria):
        ids: torch.Tensor | None = None

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            self.ids = input_ids.clone()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    # generate()'s greedy tokens, its grid mapped back from the delay pattern
    last = _LastIds()
    inputs = tokenizer([prompt], return_tensors="pt").to(device)
    with torch.inference_mode():
        model.generate(
            **inputs,
            do_sample=False,
            guidance_scale=3.0,
            max_new_tokens=steps,
            stopping_criteria=StoppingCriteriaList([last]),
        )
    assert last.ids is not None
    k = model.decoder.config.num_codebooks
    channels = model.decoder.config.audio_channels
    pattern = build_pattern(None, k, channels, last.ids.shape[1], model.generation_config.pad_token_id)
    reference = extract_codes(torch.where(pattern == -1, last.ids, pattern), channels)

    greedy = SamplingParams(greedy=True, guidance_scale=3.0)
    fp32 = DecodeEngine(model, tokenizer, EngineConfig(max_slots=2, max_new_tokens=steps, dtype=torch.float32))
    codes = fp32.generate([EngineRequest(max_new_tokens=steps, text=prompt, sampling=greedy)])[0].codes
    same = codes.shape == reference.shape and bool(torch.equal(codes.cpu(), reference.cpu()))
    frames = min(codes.shape[-1], reference.shape[-1])
    agree = float((codes[..., :frames].cpu() == reference[..., :frames].cpu()).float().mean()) if frames else 0.0
    graphs_fp32 = fp32.use_graphs
    fp32.close()
    del fp32

    # time to the first streamed second, at the engine's serving dtype (bf16/fp16 on CUDA)
    codec_config: Any = model.config.audio_encoder
    frame_rate = float(codec_config.frame_rate)
    span = k // channels
    long_steps = round(size["first_chunk_seconds"] * frame_rate) + span - 1
    engine = DecodeEngine(
        model, tokenizer, EngineConfig(max_slots=1, max_new_tokens=long_steps, dtype=half_dtype_for(device))
    )
    engine.generate([EngineRequest(max_new_tokens=round(0.5 * frame_rate) + span - 1, text="warm up")])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    first: list[float] = []
    covered = [0]
    started = time.perf_counter()

    def on_chunk(chunk: Any) -> None:
        covered[0] += chunk.samples.shape[-1]
        if not first and covered[0] >= chunk.sample_rate:
            first.append(time.perf_counter() - started)

    result = engine.generate(
        [EngineRequest(max_new_tokens=long_steps, text=prompt, on_chunk=on_chunk, chunk_seconds=1.0)]
    )[0]
    total = time.perf_counter() - started
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    engine_dtype = str(engine.dtype).removeprefix("torch.")
    engine.close()
    return {
        "preset": size["preset"],
        "greedy_fp32_steps": steps,
        "greedy_fp32_tokens_equal": same,
        "greedy_fp32_token_agreement": round(agree, 6),
        "greedy_fp32_cuda_graphs": graphs_fp32,
        "stream_request_s": size["first_chunk_seconds"],
        "stream_dtype": engine_dtype,
        "time_to_first_second_s": round(first[0], 4) if first else None,
        "stream_total_s": round(total, 4),
        "stream_audio_s": round(result.audio.shape[-1] / result.sample_rate, 3),
        "stream_peak_gpu_mb": round(peak_mb, 1) if peak_mb is not None else None,
    }


def separation_bench(size: dict[str, Any], device: str, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "separate.json"
        cmd = [
            sys.executable,
            "bench/separate.py",
            f"--model={size['separator_model']}",
            f"--seconds={size['separation_seconds']:g}",
            f"--device={device}",
            "--variants=beatflow,beatflow batch=8,apply_model shifts=0",
            f"--out={out}",
        ]
        return _run_json(cmd, out, timeout_s)


def separation_equality(size: dict[str, Any], device: str) -> dict[str, Any]:
    """The separator's segment loop against ``apply_model(split=True)`` on the same mix and settings."""
    import numpy as np
    import soundfile as sf
    import torch
    from demucs.apply import apply_model

    from beatflow.separator.models import load_model
    from beatflow.separator.separation import SeparationOptions, separate
    from beatflow.separator.testsignals import music_like

    model = load_model(size["separator_model"], device=device)
    mix = music_like(size["equality_seconds"], model.samplerate, seed=5)
    segment = float(model.default_segment_s)
    with torch.no_grad():
        net: Any = model.model  # a demucs model, typed as a plain Module
        expected = apply_model(
            net,
            torch.from_numpy(mix.T.copy())[None],
            shifts=0,
            split=True,
            overlap=0.25,
            segment=segment,
            device=model.device,
        )[0]
    expected_np = expected.cpu().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        report = separate(model, mix, Path(tmp), SeparationOptions(segment_s=segment, overlap=0.25))
        worst = 0.0
        for i, name in enumerate(model.sources):
            if name == "other":  # "other" also carries the residual, so stems sum to the mix
                continue
            stem = sf.read(str(report.stems[name]), dtype="float32", always_2d=True)[0]
            worst = max(worst, float(np.abs(stem - expected_np[i].T).max()))
        total = sum(sf.read(str(p), dtype="float32", always_2d=True)[0] for p in report.stems.values())
    return {
        "model": size["separator_model"],
        "audio_s": size["equality_seconds"],
        "segment_s": segment,
        "max_abs_diff": worst,
        "equal_within_1e-3": worst <= EQUAL_TOLERANCE,
        "sum_to_mix_max_abs": float(np.abs(total - mix).max()),
    }


def environment(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
    }
    for name in ("transformers", "demucs", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # a missing package is a finding, not a crash
            info[name] = f"missing: {exc}"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def _part(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    started = time.perf_counter()
    print(f"[gpu-check] {name} ...", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    results[name].setdefault("wall_s", round(time.perf_counter() - started, 2))
    status = "FAILED" if "error" in results[name] else "ok"
    print(f"[gpu-check] {name}: {status} in {results[name]['wall_s']} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the tiny presets, seconds of audio)")
    parser.add_argument("--out", default="", help="JSON path (default $OUT/gpu_check.json or bench/results/)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: gpu_tests,generation,separation")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu-check: no CUDA device is visible to torch "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). "
            "Run it on a GPU machine, or 'make gpu-check DEVICE=cpu QUICK=1' to exercise the script on the CPU.",
            file=sys.stderr,
        )
        return 2
    size = SIZES["quick" if args.quick else "full"]
    skip = {s for s in args.skip.split(",") if s}
    out = Path(args.out) if args.out else Path(os.environ.get("OUT") or ROOT / "bench" / "results") / "gpu_check.json"
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "sizes": size}
    _part(results, "environment", lambda: environment(args.device))
    # deadlines per part: the full run must end well inside 8 minutes on an H100/H200
    if "gpu_tests" not in skip:
        _part(results, "gpu_tests", lambda: gpu_tests(args.device, timeout_s=120))
    if "generation" not in skip:
        _part(results, "generation", lambda: generation_bench(size, args.device, timeout_s=240))
        _part(results, "generation_checks", lambda: generation_checks(size, args.device))
    if "separation" not in skip:
        _part(results, "separation", lambda: separation_bench(size, args.device, timeout_s=150))
        _part(results, "separation_equality", lambda: separation_equality(size, args.device))
    results["total_s"] = round(time.perf_counter() - started, 2)
    failed = sorted(name for name, part in results.items() if isinstance(part, dict) and "error" in part)
    results["failed_parts"] = failed
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"[gpu-check] wrote {out} in {results['total_s']} s; failed parts: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
