"""Key detection on rendered chord progressions: the current estimator beside the previous one.

The set (rendered here, no dataset): all 24 keys x 4 progressions per mode
(``cadence`` I-IV-V-I / i-iv-V-i and ``dominant`` I-V-I-V / i-V-i-V with the
harmonic-minor major V; ``pop`` and ``modal`` in natural minor) x with and
without drums (kick, snare, hats), tempo varying with the key. 192 pieces by
default. Both estimators see the same audio in the same run.

Prints overall accuracy, accuracy per mode/progression/drums, the error kinds
(parallel, relative, fifth, other), and calibration: accuracy per confidence
band (an honest confidence is right about as often as it says). Writes
bench/results/analysis.json.

    python bench/analysis.py                 # 192 pieces of 8 s
    python bench/analysis.py --seconds 6 --keys C,A   # a quick subset
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from beatflow.common.audioanalysis import PITCHES, estimate_key, estimate_key_legacy  # noqa: E402
from beatflow.common.testsignals import chord_progression, drum_pattern  # noqa: E402

SR = 22050
PROGRESSIONS = ("cadence", "dominant", "pop", "modal")
BANDS = [(0.0, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 1.01)]
ESTIMATORS = {"current": estimate_key, "legacy": estimate_key_legacy}


def error_kind(true: tuple[str, str], got: tuple[str, str]) -> str:
    """right, parallel (same tonic, other mode), relative (same notes), fifth, other, or none."""
    if true == got:
        return "right"
    if not got[0]:
        return "none"
    step = (PITCHES.index(got[0]) - PITCHES.index(true[0])) % 12
    if step == 0:
        return "parallel"
    if true[1] != got[1] and step == (9 if true[1] == "major" else 3):
        return "relative"
    if true[1] == got[1] and step in (5, 7):
        return "fifth"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--keys", default=",".join(PITCHES), help="tonics to render (comma-separated)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "analysis.json"))
    args = ap.parse_args()

    rows: list[dict[str, Any]] = []
    spent: defaultdict[str, float] = defaultdict(float)
    tonics = [t.strip() for t in args.keys.split(",") if t.strip()]
    for ti, tonic in enumerate(tonics):
        for mode in ("major", "minor"):
            for prog in PROGRESSIONS:
                for drums in (False, True):
                    bpm = 80 + (PITCHES.index(tonic) * 7) % 60
                    y = chord_progression(tonic, mode, args.seconds, SR, bpm=bpm, progression=prog)
                    if drums:
                        y = y + 0.6 * drum_pattern(bpm, args.seconds, SR, seed=ti)
                    row: dict[str, Any] = {
                        "tonic": tonic,
                        "mode": mode,
                        "progression": prog,
                        "drums": drums,
                        "bpm": bpm,
                    }
                    for name, fn in ESTIMATORS.items():
                        started = time.perf_counter()
                        key = fn(y, SR)
                        spent[name] += time.perf_counter() - started
                        got = (key.tonic, key.mode)
                        kind = error_kind((tonic, mode), got)
                        row[name] = {"key": f"{key.tonic} {key.mode}", "confidence": key.confidence, "kind": kind}
                    rows.append(row)
    n = len(rows)
    print(f"\nkey detection on {n} rendered pieces ({args.seconds:g} s each, {SR} Hz)\n")
    print(f"{'':28s}" + "".join(f"{name:>14s}" for name in ESTIMATORS))

    def acc(sel: list[dict[str, Any]], name: str) -> str:
        if not sel:
            return "-"
        right = sum(r[name]["kind"] == "right" for r in sel)
        return f"{right}/{len(sel)} {100 * right / len(sel):3.0f}%"

    print(f"{'all':28s}" + "".join(f"{acc(rows, name):>14s}" for name in ESTIMATORS))
    for mode in ("major", "minor"):
        for prog in PROGRESSIONS:
            for drums in (False, True):
                sel = [r for r in rows if (r["mode"], r["progression"], r["drums"]) == (mode, prog, drums)]
                label = f"{mode} {prog}{' +drums' if drums else ''}"
                print(f"{label:28s}" + "".join(f"{acc(sel, name):>14s}" for name in ESTIMATORS))
    print("\nerror kinds")
    for kind in ("parallel", "relative", "fifth", "other", "none"):
        print(f"  {kind:26s}" + "".join(f"{sum(r[name]['kind'] == kind for r in rows):>14d}" for name in ESTIMATORS))
    print("\ncalibration: accuracy per confidence band (pieces in the band)")
    for lo, hi in BANDS:
        cells = []
        for name in ESTIMATORS:
            sel = [r for r in rows if lo <= r[name]["confidence"] < hi]
            right = sum(r[name]["kind"] == "right" for r in sel)
            cells.append(f"{right}/{len(sel)}" + (f" {100 * right / len(sel):3.0f}%" if sel else ""))
        print(f"  {f'{lo:.1f}-{min(hi, 1.0):.1f}':26s}" + "".join(f"{c:>14s}" for c in cells))
    wrong_confident = {
        name: sum(r[name]["kind"] != "right" and r[name]["confidence"] >= 0.8 for r in rows) for name in ESTIMATORS
    }
    print(f"  {'wrong, confidence >= 0.8':26s}" + "".join(f"{wrong_confident[name]:>14d}" for name in ESTIMATORS))
    print(f"\n{'seconds per piece':28s}" + "".join(f"{spent[name] / n:>14.3f}" for name in ESTIMATORS))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds": args.seconds, "sample_rate": SR, "pieces": rows}, indent=1, default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
