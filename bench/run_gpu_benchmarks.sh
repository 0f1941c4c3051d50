#!/usr/bin/env bash
# Paper-scale GPU benchmarks, ours beside the plain transformers + peft anchor, in ONE process session
# on one machine so the figures compare (the anchor scripts live in ../shared/bench of a checkout).
#   bench/run_gpu_benchmarks.sh ANCHOR_DIR OUT_DIR
# Writes OUT_DIR/{anchor-train,ours-train,ours-train-no-prefix,ours-train-profile,anchor-decode,ours-decode}.jsonl
# and nvidia-smi.txt.
set -uo pipefail
anchor_dir=${1:?usage: $0 ANCHOR_DIR OUT_DIR}
out=${2:?usage: $0 ANCHOR_DIR OUT_DIR}
mkdir -p "${out}"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi > "${out}/nvidia-smi.txt" 2>&1 || true
run() {  # run NAME CMD...: keep going when one benchmark fails, so the others still report
    local name=$1; shift
    echo "### ${name}: $*"
    local t0=$(date +%s)
    timeout "${BENCH_TIMEOUT:-240}" "$@" 2>&1 | tee "${out}/${name}.log" | grep '^{' > "${out}/${name}.jsonl"
    echo "### ${name}: exit ${PIPESTATUS[0]} after $(( $(date +%s) - t0 )) s"
}
run anchor-train env SCALE=7b B=8 ${py} "${anchor_dir}/gpu_anchor.py"
run ours-train ${py} bench/train_throughput.py --scale 7b
run ours-train-no-prefix ${py} bench/train_throughput.py --scale 7b --skip_naive_trimmed --no_prefix_cache
run ours-train-profile ${py} bench/train_throughput.py --scale 7b --skip_naive_trimmed --profile 40
run anchor-decode ${py} "${anchor_dir}/gpu_decode_anchor.py"
run ours-decode ${py} bench/decode_speed.py --scale 7b --modes generate,static,static_graph
