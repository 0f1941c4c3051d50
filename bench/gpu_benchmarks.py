"""All of issue 16's GPU measurements in one device call, most important first, within a time budget.

    python bench/gpu_benchmarks.py ANCHOR_DIR OUT_DIR               # GPU: paper scale, about 8 minutes
    python bench/gpu_benchmarks.py ANCHOR_DIR OUT_DIR --smoke-cpu   # CPU: every part at toy size (a dry check)

(``bench/run_gpu_benchmarks.sh`` calls this.) Each part is a separate process with its own timeout,
never more than what is left of ``--budget_s``, so one failure or hang costs its own slot only; a part
that does not fit is reported as skipped. ``OUT_DIR/<part>.log`` holds each part's output and
``OUT_DIR/<part>.jsonl`` its JSON lines; ``OUT_DIR/summary.json`` and the printed table compare the
results with the issue's targets:

    cached >= 2.5x naive, cached >= 1.3x the anchor's cached (plain transformers + peft),
    cached llm_mfu >= 0.40, decode at batch 1 <= 2x the weight-streaming bound.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"cached_vs_naive": (">=", 2.5), "cached_vs_anchor": (">=", 1.3), "llm_mfu": (">=", 0.40),
           "decode_x_bound": ("<=", 2.0)}


def parts(anchor_dir, out, smoke):
    """``(name, command, env, timeout_s)`` in order of importance; ``smoke``: toy sizes on CPU."""
    py = sys.executable
    impls = "gather,masked,grouped"
    if smoke:
        train = [py, "bench/train_throughput.py", "--scale", "tiny", "--warmup", "1", "--iters", "1", "--threads", "1"]
        # CPU budget (~175 s): the anchor is cut at 60 s (its train lines come first; its CPU decode is slow),
        # and compile uses the aot_eager backend (the same capture, no C++ kernel generation: minutes on CPU).
        return [
            ("gpu-tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/gpu"], {}, 30),
            ("ours-train", train + ["--plora_impls", impls, "--skip_naive_trimmed"], {}, 40),
            ("anchor-train", [py, str(anchor_dir / "gpu_anchor.py")], {"SCALE": "small", "B": "2"}, 60),
            ("stage4-smoke", [py, "bench/train_stage_smoke.py", "--scale", "tiny", "--utts", "16", "--batch", "4",
                              "--work", str(out / "stage4-work")], {}, 40),
            ("ours-train-compile", train + ["--plora_impls", "masked", "--skip_naive", "--compile",
                                            "--compile_backend", "aot_eager"], {}, 40),
            ("ours-decode", [py, "bench/decode_speed.py", "--scale", "small", "--batches", "1", "--modes",
                             "static", "--prompt_len", "16", "--short", "2", "--long", "4"], {}, 30),
            ("plora-step", [py, "bench/plora_step.py", "--layers", "1", "--warmup", "1", "--iters", "1"], {}, 20),
        ]
    train = [py, "bench/train_throughput.py", "--scale", "7b"]
    return [
        # correctness first: the graph decoder and the fast plora paths on this GPU (seconds)
        ("gpu-tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/gpu"], {}, 120),
        # ours, naive and one cached step per plora impl, interleaved in one process
        ("ours-train", train + ["--plora_impls", impls, "--skip_naive_trimmed"], {}, 150),
        ("anchor-train", [py, str(anchor_dir / "gpu_anchor.py")], {"SCALE": "7b", "B": "8"}, 150),
        # stage 4 itself (rellm.bin.train, the paper config), random 7B weights on generated features
        ("stage4-smoke", [py, "bench/train_stage_smoke.py", "--scale", "7b", "--work", str(out / "stage4-work")],
         {}, 200),
        ("ours-train-compile", train + ["--plora_impls", "masked", "--skip_naive", "--compile"], {}, 200),
        ("ours-decode", [py, "bench/decode_speed.py", "--scale", "7b", "--batches", "1", "--modes", "static_graph"],
         {}, 90),
        ("plora-step", [py, "bench/plora_step.py", "--scale", "7b", "--layers", "4"], {}, 60),
        ("ours-train-profile", train + ["--plora_impls", "masked", "--skip_naive", "--profile", "40"], {}, 120),
    ]


def package_versions():
    """What the parts import, so that a part failing on a machine's image says why at a glance."""
    from importlib import metadata

    versions = {}
    for name in ("torch", "transformers", "peft", "speechbrain", "hyperpyyaml", "torchaudio", "pytest", "triton"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_part(name, cmd, env, timeout, out):
    """Run one part in its own process group; kill the whole group on timeout. Returns (status, seconds)."""
    t0 = time.time()
    log = out / f"{name}.log"
    print(f"### {name} (timeout {timeout:.0f} s): {' '.join(cmd)}", flush=True)
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "timeout"
    lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.startswith("{")]
    (out / f"{name}.jsonl").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    took = time.time() - t0
    print(f"### {name}: {status} after {took:.0f} s", flush=True)
    return status, took


def read_jsonl(path):
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def summarise(out, statuses):
    """The figures the issue's targets name, from the parts' JSON lines (None where a part gave none)."""
    def rows(name, **match):
        return [r for r in read_jsonl(out / f"{name}.jsonl") if all(r.get(k) == v for k, v in match.items())]

    steps = rows("ours-train", what="train_step") + rows("ours-train-compile", what="train_step")
    cached = [r for r in steps if str(r.get("mode", "")).startswith("cached_")]
    best = max(cached, key=lambda r: r["utt_per_s"], default=None)
    naive = next(iter(rows("ours-train", what="train_step", mode="naive")), None)
    anchor = next(iter(rows("anchor-train", what="train_step", mode="cached")), None)
    anchor_naive = next(iter(rows("anchor-train", what="train_step", mode="naive")), None)
    decode = next(iter(rows("ours-decode", what="decode", batch=1)), None)
    stage4 = rows("stage4-smoke", what="stage4_step")
    summary = {
        "what": "summary", "parts": statuses,
        "cached_by_impl": {f"{r['mode'][len('cached_'):]}{'+compile' if r.get('compile') else ''}": r["utt_per_s"]
                           for r in cached},
        "best_cached": best and f"{best['mode']}{'+compile' if best.get('compile') else ''}",
        "naive_utt_per_s": naive and naive["utt_per_s"], "cached_utt_per_s": best and best["utt_per_s"],
        "anchor_naive_utt_per_s": anchor_naive and anchor_naive["utt_per_s"],
        "anchor_cached_utt_per_s": anchor and anchor["utt_per_s"],
        "cached_vs_naive": best and naive and best["utt_per_s"] / naive["utt_per_s"],
        "cached_vs_anchor": best and anchor and best["utt_per_s"] / anchor["utt_per_s"],
        "llm_mfu": best and best.get("llm_mfu"),
        "decode_x_bound": decode and decode.get("ratio_to_bound"),
        "stage4": {r["step"]: {"batch_s": r["batch_s"], "utt_per_s": r["utt_per_s"], "peak_gib": r["peak_gib"]}
                   for r in stage4},
    }
    summary["targets_met"] = {k: _meets(summary[k], op, v) for k, (op, v) in TARGETS.items()}
    return summary


def _meets(value, op, target):
    if value is None:
        return None
    return value >= target if op == ">=" else value <= target


def _fmt(v):
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def print_table(summary):
    fmt = _fmt
    print("\n| figure | value | target | met |\n|---|---|---|---|")
    for key, (op, target) in TARGETS.items():
        print(f"| {key} | {fmt(summary[key])} | {op} {target} | {fmt(summary['targets_met'][key])} |")
    print("\n| path | utt/s |\n|---|---|")
    print(f"| ours naive | {fmt(summary['naive_utt_per_s'])} |")
    for impl, v in summary["cached_by_impl"].items():
        print(f"| ours cached, plora {impl} | {fmt(v)} |")
    print(f"| anchor naive | {fmt(summary['anchor_naive_utt_per_s'])} |")
    print(f"| anchor cached | {fmt(summary['anchor_cached_utt_per_s'])} |")
    for step, r in summary["stage4"].items():
        what = f"stage 4 ({step}), batch {fmt(r['batch_s'])} s, peak {fmt(r['peak_gib'])} GiB"
        print(f"| {what} | {fmt(r['utt_per_s'])} |")
    print("\nparts: " + ", ".join(f"{k} {v}" for k, v in summary["parts"].items()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("anchor_dir", type=Path, help="the folder of gpu_anchor.py (shared/bench)")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--smoke-cpu", dest="smoke", action="store_true", help="toy sizes on CPU: check the script itself")
    ap.add_argument("--budget_s", type=float, default=None, help="total time (default 480 on GPU, 175 --smoke-cpu)")
    ap.add_argument("--only", default=None, help="comma-separated part names to run (default: all)")
    args = ap.parse_args()
    out = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget_s or (175.0 if args.smoke else 480.0)
    deadline = time.time() + budget
    if not args.smoke:
        try:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
        except OSError as err:
            smi = f"nvidia-smi: {err}"
        (out / "nvidia-smi.txt").write_text(smi, encoding="utf-8")
    (out / "packages.json").write_text(json.dumps(package_versions(), indent=1) + "\n", encoding="utf-8")
    only = set(args.only.split(",")) if args.only else None
    statuses = {}
    for name, cmd, env, timeout in parts(args.anchor_dir.resolve(), out, args.smoke):
        if only and name not in only:
            continue
        left = deadline - time.time()
        if left < 15:
            statuses[name] = "skipped (budget)"
            print(f"### {name}: skipped, {left:.0f} s of the budget left", flush=True)
            continue
        status, took = run_part(name, cmd, env, min(timeout, left), out)
        statuses[name] = f"exit {status}, {took:.0f} s" if status != "timeout" else f"timeout after {took:.0f} s"
    summary = summarise(out, statuses)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary), flush=True)
    print_table(summary)


if __name__ == "__main__":
    main()
