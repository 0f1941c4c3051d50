"""Paired comparison of the variants in ``epitome_cv.py`` output: each against a baseline, on the same draws.

The held-out draws differ more from each other (a single draw's accuracy has a standard deviation of
~0.017 for IP) than the options do, so variants are compared draw by draw: the mean of the per-draw
differences to the baseline and its standard error. Reads every ``*.jsonl`` in the given folders or files.

    tools/venv/bin/python bench/epitome_cv_compare.py bench/results/h200-2026-11-27/sweep2
    tools/venv/bin/python bench/epitome_cv_compare.py OUT_DIR --baseline "select_on=accuracy"
"""
import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("accuracy", "macro_f1", "iou_f1")


def read_draws(paths):
    """``{variant: {draw seed: row}}`` of the ``"what": "draw"`` lines."""
    draws = defaultdict(dict)
    for path in map(Path, paths):
        for file in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
            for line in file.read_text().splitlines():
                row = json.loads(line) if line.startswith("{") else {}
                if row.get("what") == "draw":
                    draws[row.get("variant", "")][row["seed"]] = row
    return draws


def paired_summary(draws, baseline=""):
    """One dict per variant: means over its draws and the paired accuracy difference to ``baseline``."""
    if baseline not in draws:
        raise SystemExit(f"no draws of the baseline variant {baseline!r}; variants: {sorted(draws)}")
    base = draws[baseline]
    out = []
    for variant, rows in draws.items():
        seeds = sorted(set(rows) & set(base))
        diffs = [rows[s]["accuracy"] - base[s]["accuracy"] for s in seeds]
        out.append({"variant": variant, "draws": len(rows),
                    **{m: round(statistics.mean(r[m] for r in rows.values()), 4) for m in METRICS},
                    "paired_draws": len(seeds),
                    "accuracy_diff": round(statistics.mean(diffs), 4) if diffs else None,
                    "accuracy_diff_se": round(statistics.stdev(diffs) / len(diffs) ** 0.5, 4) if len(diffs) > 1 else None})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="epitome_cv.py output folders or .jsonl files")
    ap.add_argument("--baseline", default="", help="the variant the others are compared with (default: no overrides)")
    args = ap.parse_args()
    draws = read_draws(args.paths)
    base = [r["accuracy"] for r in draws.get(args.baseline, {}).values()]
    if len(base) > 1:
        print(json.dumps({"what": "baseline", "variant": args.baseline, "draws": len(base),
                          "accuracy_mean": round(statistics.mean(base), 4),
                          "accuracy_sd_of_a_draw": round(statistics.stdev(base), 4)}))
    for row in paired_summary(draws, args.baseline):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
