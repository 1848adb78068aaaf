"""Separation speed and memory: BeatFlow's segment loop beside plain ``demucs.apply.apply_model``.

For each track length, in a fresh subprocess each (so peak memory is clean):

* ``beatflow``: the separator's job pipeline minus blob transfers — decode the
  file block by block, resample to a raw float32 file, separate segment by
  segment, write stems (float WAV) as they finish;
* ``beatflow batch=8``: the same, eight full-length segments per model pass (the GPU setting);
* ``apply_model``: the plain demucs way — read the whole file, one
  ``apply_model(model, mix)`` call with its defaults (shifts=1, split=True,
  overlap=0.25), write the stems;
* ``apply_model shifts=0``: the same without the random shift, which is what the
  service runs by default, for a like-for-like speed comparison.

Real-time factor = wall seconds / audio seconds (lower is faster). Peak memory
is the growth of the process' resident set during the run (Linux VmHWM after a
reset), and on CUDA the peak allocated GPU memory.

    python bench/separate.py --model tiny --seconds 30,120 --device cpu --repeat 3
    python bench/separate.py --model htdemucs-arch --seconds 20 --device cuda

With ``--repeat N`` each variant runs N times, the order rotated between
repeats (on a shared machine the load drifts and whoever runs first pays); the
table keeps each variant's fastest run and largest memory peak, the JSON keeps
every run with the 1-minute load average beside it.

Prints a table and writes bench/results/separate.json.
"""

from __future__ import annotations

import os
import sys

# bench/ holds modules named like the standard library's (queue.py): keep it off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

VARIANTS = ["beatflow", "beatflow batch=8", "apply_model", "apply_model shifts=0"]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _run_one(variant: str, model_name: str, device: str, wav: str, threads: int, queue: Any) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    from beatflow.separator.audio_stream import prepare_mix
    from beatflow.separator.models import load_model
    from beatflow.separator.separation import SeparationOptions, separate

    if threads:
        torch.set_num_threads(threads)
    model = load_model(model_name, device=device)
    net: Any = model.model  # a demucs model, typed as a plain Module
    with torch.no_grad():  # warm up kernels outside the measurement
        model.model(torch.zeros(1, 2, int(model.samplerate * model.default_segment_s), device=model.device))
    if model.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    out = Path(tempfile.mkdtemp(prefix="bench-sep-"))
    base = _rss_kib("VmRSS")
    exact_peak = _reset_peak()
    started = time.perf_counter()
    frames = 0
    if variant.startswith("beatflow"):
        batch = int(variant.partition("batch=")[2] or 1)
        mix = prepare_mix(wav, out / "mix.f32", sample_rate=model.samplerate, channels=model.audio_channels)
        report = separate(
            model,
            mix.open(),
            out / "stems",
            SeparationOptions(format="wav"),
            mean=mix.mean,
            std=mix.std,
            segment_batch=batch,
        )
        frames = report.frames
    else:
        from demucs.apply import apply_model

        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        assert sr == model.samplerate
        ref = audio.mean(axis=1)
        mean, std = float(ref.mean()), float(ref.std()) or 1.0
        x = torch.from_numpy(((audio - mean) / std).T.copy())[None]
        if variant.endswith("shifts=0"):
            est = apply_model(net, x, device=model.device, shifts=0)[0] * std + mean
        else:
            est = apply_model(net, x, device=model.device)[0] * std + mean
        for name, stem in zip(model.sources, est, strict=True):
            sf.write(str(out / f"{name}.wav"), stem.cpu().numpy().T, sr, subtype="FLOAT")
        frames = audio.shape[0]
        del est, x, audio
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    gpu_peak = torch.cuda.max_memory_allocated() if model.device.type == "cuda" else 0
    for path in sorted(out.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    out.rmdir()
    queue.put(
        {
            "variant": variant,
            "model": model_name,
            "device": str(model.device),
            "audio_s": frames / model.samplerate,
            "wall_s": round(wall, 3),
            "rtf": round(wall / (frames / model.samplerate), 4),
            "peak_rss_growth_mb": round(max(0, peak - base) / 1024, 1) if exact_peak else None,
            "peak_gpu_mb": round(gpu_peak / 2**20, 1) if gpu_peak else None,
            "parameters_m": round(model.num_parameters / 1e6, 2),
            "threads": torch.get_num_threads(),
            "_np": np.__version__,
        }
    )


def _spawn(ctx: Any, variant: str, args: argparse.Namespace, wav: str, seconds: float) -> dict[str, Any] | None:
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_one, args=(variant, args.model, args.device, wav, args.threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        print(f"{variant} at {seconds:g}s failed (exit {proc.exitcode})", file=sys.stderr)
        return None
    row: dict[str, Any] = queue.get()
    row.pop("_np", None)
    row["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(
        f"  {variant:<22} {seconds:>6.0f}s  RTF {row['rtf']:.3f}  (load {row['loadavg_1m']})",
        file=sys.stderr,
        flush=True,
    )
    return row


def _best_of(runs: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    """Per (track length, variant): the fastest repeat, with the largest memory peak seen."""
    best: dict[tuple[float, str], dict[str, Any]] = {}
    for row in runs:
        key = (row["audio_s"], row["variant"])
        kept = best.get(key)
        if kept is None or row["wall_s"] < kept["wall_s"]:
            peaks = [
                r["peak_rss_growth_mb"]
                for r in runs
                if (r["audio_s"], r["variant"]) == key and r["peak_rss_growth_mb"] is not None
            ]
            best[key] = {
                **row,
                "repeats": sum((r["audio_s"], r["variant"]) == key for r in runs),
                "peak_rss_growth_mb": max(peaks) if peaks else None,
            }
    return sorted(best.values(), key=lambda r: (r["audio_s"], variants.index(r["variant"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, htdemucs-arch, htdemucs_6s-arch or a pretrained name")
    parser.add_argument("--seconds", default="30,120", help="comma-separated track lengths")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, order rotated; the fastest is kept")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "separate.json"))
    args = parser.parse_args()

    import numpy as np
    import soundfile as sf

    from beatflow.separator.testsignals import music_like

    ctx = mp.get_context("spawn")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in [float(s) for s in args.seconds.split(",")]:
            wav = os.path.join(tmp, f"mix-{seconds:g}.wav")
            block = music_like(min(seconds, 30.0), 44100, seed=1)
            reps = int(np.ceil(seconds / 30.0))
            sf.write(wav, np.tile(block, (reps, 1))[: int(seconds * 44100)], 44100, subtype="PCM_16")
            variants = args.variants.split(",")
            for rep in range(args.repeat):
                # Rotate the order each repeat: machine load drifts, and whoever runs first pays for it.
                order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
                for variant in order:
                    row = _spawn(ctx, variant, args, wav, seconds)
                    if row is not None:
                        row["repeat"] = rep
                        runs.append(row)
        rows = _best_of(runs, variants)

    header = (
        f"{'variant':<22} {'model':<14} {'device':<7} {'audio s':>8} {'wall s':>8} {'RTF':>7} "
        f"{'peak RSS +MB':>13} {'peak GPU MB':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rss = "-" if r["peak_rss_growth_mb"] is None else f"{r['peak_rss_growth_mb']:.1f}"
        gpu = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.1f}"
        print(
            f"{r['variant']:<22} {r['model']:<14} {r['device']:<7} {r['audio_s']:>8.1f} {r['wall_s']:>8.2f} "
            f"{r['rtf']:>7.3f} {rss:>13} {gpu:>12}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        meta["torch"] = torch.__version__
        if torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    meta["loadavg_end"] = list(os.getloadavg())
    out.write_text(json.dumps({"meta": meta, "args": vars(args), "results": rows, "runs": runs}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
