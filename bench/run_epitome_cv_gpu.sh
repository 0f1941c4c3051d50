#!/usr/bin/env bash
# Compare many EPITOME classifier options on held-out draws in one GPU call (bench/epitome_cv.py, --device=cuda).
#
#   bash bench/run_epitome_cv_gpu.sh MECH ENCODER_DIR EPITOME_DIR OUT_DIR DRAWS VARIANT_FILE
#
# VARIANT_FILE: one line per process, its variants separated by " | " (each variant: "key=value ..."; an
# empty variant is the config's own options). Every process loads the encoder once and runs its variants
# one after the other on the same draws; the processes share the GPU. Each writes OUT_DIR/cv_<line>.jsonl
# as it goes, so a run stopped at its time limit still returns the finished draws; stderr goes to
# ERR_DIR/cv_<line>.err (default OUT_DIR). DEVICE=cpu and PYTHON=... run it elsewhere (one IP draw: ~12 s
# on an H200, 4-5 min on one CPU core). Summarise with bench/epitome_cv_compare.py OUT_DIR.
set -euo pipefail
mech=$1; encoder=$2; data=$3; out=$4; draws=$5; variants=$6
mkdir -p "${out}"
here=$(cd "$(dirname "$0")" && pwd)
k=0
pids=()
while IFS= read -r line; do
  [[ -z "${line// }" || "${line}" == \#* ]] && continue
  k=$((k + 1))
  args=()
  IFS='|' read -ra parts <<< "${line}"
  for v in "${parts[@]}"; do
    v="${v#"${v%%[![:space:]]*}"}"; v="${v%"${v##*[![:space:]]}"}"  # trim
    args+=(--variant "${v}")
  done
  PYTHONUNBUFFERED=1 "${PYTHON:-python3}" "${here}/epitome_cv.py" "${mech}" --draws "${draws}" "${args[@]}" \
    --encoder="${encoder}" --data_dir="${data}" --device="${DEVICE:-cuda}" --num_threads=2 \
    > "${out}/cv_${k}.jsonl" 2> "${ERR_DIR:-${out}}/cv_${k}.err" &
  pids+=($!)
done < "${variants}"
status=0
for pid in "${pids[@]}"; do wait "${pid}" || status=1; done
exit ${status}
