"""``make gpu-check`` is ready for a GPU machine: its CPU path runs end to end and reports every field."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
try:
    from gpu_check import GPU_TEST_FILES  # type: ignore[import-not-found]
finally:
    sys.path.pop(0)


def test_every_gpu_marked_test_file_is_run_by_gpu_check() -> None:
    marked = set()
    for path in [*ROOT.glob("services/*/tests/*.py"), *ROOT.glob("tests/*.py")]:
        if re.search(r"^@pytest\.mark\.gpu", path.read_text(), re.MULTILINE):
            marked.add(str(path.relative_to(ROOT)))
    assert marked, "no gpu-marked tests found"
    assert marked == set(GPU_TEST_FILES)


def test_gpu_check_without_cuda_fails_fast_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device visible, on any machine
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--device", "cuda", "--out", str(tmp_path / "x.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "DEVICE=cpu QUICK=1" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_gpu_check_quick_on_the_cpu_writes_every_field(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", "DEVICE=cpu", "QUICK=1", f"PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["failed_parts"] == []
    assert report["environment"]["device"] == "cpu"
    tests = report["gpu_tests"]
    assert tests["tests"] >= 4 and tests["failures"] == 0 and tests["errors"] == 0
    rows = report["generation"]["rows"]
    assert [r["workload"] for r in rows] == ["single", "concurrent"]
    for row in rows:
        for key in ("engine_rtf", "generate_rtf", "engine_peak_mb", "generate_peak_mb", "speedup"):
            assert row[key] is not None and row[key] > 0, key
        # the engine as it ships beside the engine without its step improvements (fused QKV, exact attention)
        assert list(row["variants"]) == ["previous", "both"]
        for cell in row["variants"].values():
            assert cell["rtf"] > 0 and cell["step_ms"] > 0 and cell["speedup_vs_previous"] > 0
    checks = report["generation_checks"]
    assert checks["greedy_fp32_tokens_equal"] is True
    assert 0 < checks["time_to_first_second_s"] <= checks["stream_total_s"]
    assert checks["stream_audio_s"] == pytest.approx(checks["stream_request_s"], abs=0.05)
    variants = {r["variant"] for r in report["separation"]["runs"]}
    assert variants == {"beatflow", "beatflow batch=8", "apply_model shifts=0"}
    for run in report["separation"]["runs"]:
        assert run["rtf"] > 0
    sep = report["separation_equality"]
    assert sep["equal_within_1e-3"] is True and sep["max_abs_diff"] <= 1e-3
    assert sep["sum_to_mix_max_abs"] < 1e-5
