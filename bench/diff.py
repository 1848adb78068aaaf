"""Perceptual audio diff speed: real-time factor of a 4-stem pair on the CPU.

Writes a pair of synthetic 4-stem takes (44.1 kHz stereo float WAV; in the second take one
stem has a replaced region, one a 3 dB gain change, one a 250 ms offset, one is identical, as
in a real revision) and runs the separator's diff on each stem pair, as the diff job does
minus the blob transfers: once with the summary (loudness, peak, tempo, key of both sides)
and once without it (frames, alignment, gain and regions only). The identical pair is
short-circuited by the job before decoding; it is timed here through ``diff_files`` anyway,
so the figure is the worst case.

Real-time factor = wall seconds / audio seconds of the pair's "to" side summed over stems
(lower is faster). Peak memory: the process' VmHWM growth.

    python bench/diff.py --seconds 180 --repeat 2

Prints a table and writes bench/results/diff.json.
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
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 44100


def _hwm_kib() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_hwm() -> None:
    """Reset the peak resident set to the current one (Linux), so each variant's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write_pair(root: Path, seconds: float) -> list[tuple[str, Path, Path]]:
    from beatflow.separator.testsignals import music_like

    pairs = []
    n = int(seconds * SR)
    for i, (name, change) in enumerate((("drums", "region"), ("bass", "gain"), ("keys", "offset"), ("vox", "same"))):
        take = music_like(seconds, SR, seed=10 + i)
        other = take.copy()
        if change == "region":
            lo, hi = n // 3, n // 3 + 4 * SR
            other[lo:hi] = music_like(4.0, SR, seed=99)
        elif change == "gain":
            other *= np.float32(10 ** (3 / 20))
        elif change == "offset":
            other = np.concatenate([np.zeros((SR // 4, 2), np.float32), take])[:n]
        a, b = root / f"{name}-from.wav", root / f"{name}-to.wav"
        sf.write(a, take, SR, subtype="FLOAT")
        sf.write(b, other, SR, subtype="FLOAT")
        pairs.append((name, a, b))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "diff.json"))
    args = parser.parse_args()

    from beatflow.separator import audiodiff

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        pairs = _write_pair(Path(tmp), args.seconds)
        audiodiff.diff_files(pairs[0][1], pairs[0][2], with_summary=False)  # warm up imports and filters
        for variant, summary in (("frames+regions", False), ("with summary", True)):
            _reset_hwm()
            base_hwm = _rss_kib()
            best = None
            per_stem: dict[str, Any] = {}
            for _ in range(max(1, args.repeat)):
                started = time.perf_counter()
                for name, a, b in pairs:
                    t0 = time.perf_counter()
                    d = audiodiff.diff_files(a, b, with_summary=summary)
                    per_stem[name] = {
                        "seconds": round(time.perf_counter() - t0, 3),
                        "status": d.status,
                        "regions": [r.to_dict() for r in d.regions],
                        "gain_db": round(d.gain_db, 3),
                        "offset_s": round(d.offset_s, 4),
                    }
                wall = time.perf_counter() - started
                best = wall if best is None else min(best, wall)
            assert best is not None
            audio_s = args.seconds * len(pairs)
            rows.append(
                {
                    "variant": variant,
                    "stems": len(pairs),
                    "seconds_per_stem": args.seconds,
                    "wall_s": round(best, 2),
                    "rtf": round(best / audio_s, 4),
                    "peak_rss_growth_mib": round(max(0, _hwm_kib() - base_hwm) / 1024, 1),
                    "per_stem": per_stem,
                    "load_1m": round(os.getloadavg()[0], 2),
                }
            )

    print(f"{'variant':<16} {'stems':>5} {'s/stem':>7} {'wall s':>8} {'RTF':>8} {'peak MiB':>9} {'load':>5}")
    for r in rows:
        print(
            f"{r['variant']:<16} {r['stems']:>5} {r['seconds_per_stem']:>7.0f} {r['wall_s']:>8.2f} "
            f"{r['rtf']:>8.4f} {r['peak_rss_growth_mib']:>9.1f} {r['load_1m']:>5.1f}"
        )
    for name, s in rows[0]["per_stem"].items():
        print(f"  {name:<6} {s['status']:<10} gain {s['gain_db']:+.2f} dB offset {s['offset_s']:.3f} s {s['regions']}")
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "args": vars(args), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
