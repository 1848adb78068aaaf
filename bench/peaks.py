"""Waveform peaks: time and peak traced memory against audio length, local and block-streamed.

Writes 16-bit stereo WAV files of several lengths into a local blob store,
computes peaks for each (the gateway's code path, ``beatflow.gateway.peaks``)
and records seconds, frames per second and the peak memory numpy allocates
(tracemalloc) next to what decoding the whole file would take. The peak should
stay flat as the audio gets longer.

Prints a table and writes JSON to bench/results/peaks.json.

    python bench/peaks.py [--minutes 1,10,30] [--rate 44100] [--buckets 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf

from beatflow.common.blobstore import LocalBlobStore
from beatflow.gateway import peaks

ROOT = Path(__file__).resolve().parent.parent


def _write(path: Path, minutes: float, rate: int) -> None:
    """Writes the file in one-minute pieces so the benchmark itself stays small."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16") as out:
        for _ in range(int(minutes)):
            out.write((0.3 * rng.standard_normal((rate * 60, 2))).clip(-1, 1).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="1,10,30")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--buckets", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalBlobStore(Path(tmp) / "blobs")
        for minutes in [float(m) for m in args.minutes.split(",")]:
            path = Path(tmp) / f"take-{minutes}.wav"
            _write(path, minutes, args.rate)
            key = store.put_file(path, "audio/wav")
            path.unlink()
            tracemalloc.start()
            start = time.perf_counter()
            result = peaks.compute(store, key, args.buckets)
            seconds = time.perf_counter() - start
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append(
                {
                    "minutes": minutes,
                    "frames": result.frames,
                    "buckets": len(result.mins),
                    "seconds": round(seconds, 3),
                    "frames_per_s": round(result.frames / seconds),
                    "peak_traced_mb": round(peak / 1e6, 2),
                    "whole_decode_mb": round(result.frames * 2 * 4 / 1e6, 1),
                }
            )
    print(f"{'minutes':>8} {'frames':>11} {'seconds':>8} {'Mframes/s':>10} {'peak MB':>8} {'whole MB':>9}")
    for r in rows:
        print(
            f"{r['minutes']:>8} {r['frames']:>11} {r['seconds']:>8} {r['frames_per_s'] / 1e6:>10.1f} "
            f"{r['peak_traced_mb']:>8} {r['whole_decode_mb']:>9}"
        )
    out = ROOT / "bench" / "results" / "peaks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "rate": args.rate, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
