#!/usr/bin/env bash
# Issue 16's GPU measurements in ONE device call (the anchor, our naive and cached training steps with each
# partial-LoRA impl and with regional torch.compile, a paper-scale smoke of stage 4 itself, decode, the GPU
# tests), within ~8 minutes; the logic lives in bench/gpu_benchmarks.py.
#   bench/run_gpu_benchmarks.sh ANCHOR_DIR OUT_DIR [--smoke-cpu] [--budget_s S] [--only part,part]
# ANCHOR_DIR: the folder of gpu_anchor.py (../shared/bench of a checkout). --smoke-cpu: every part at toy size
# on CPU (< 3 minutes), to check the script before spending device time.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" bench/gpu_benchmarks.py "$@"
