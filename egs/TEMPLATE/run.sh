#!/usr/bin/env bash
# RE-LLM recipe: speech-LLM + emotion nuance module, from data prep to RESULTS.md.
# Everything above parse_options.sh is a flag: ./run.sh --stage 3 --stop_stage 5 --nj 8
# Stages: 1 data prep | 2 features | 3 expected responses | 4 alignment training
#         5 inference (responses + SER) | 6 scoring and RESULTS.md
set -euo pipefail

# ---- recipe settings (the lines a new recipe changes) ----------------------
corpus=TEMPLATE          # preparer name: iemocap | esd | msp_podcast | mini
split=official           # protocol: official, or fold1..fold5 (IEMOCAP leave-one-session-out)
train_set=train
valid_set=valid
test_sets="test"         # space-separated
train_emotion_encoder=false  # true: train a small dimensional emotion encoder first (no pretrained one offline)

# ---- pipeline settings ---------------------------------------------------------
stage=1
stop_stage=6
nj=4                     # parallel jobs for feature extraction
gen_nj=4                 # parallel jobs for expected-response generation
infer_nj=4               # parallel jobs for inference
ngpu=1                   # GPUs for training (torchrun); 0 = CPU
seed=1
models="blsp_emo rellm"  # trained systems (conf/train_<model>.yaml)
systems="text_only blsp_emo rellm"  # scored systems
datadir=data
dumpdir=dump
expdir=exp
prepare_args=""          # extra --key=value overrides, e.g. "--iemocap_classes=5"
extract_args=""
respond_args=""
train_args=""
infer_args=""
score_args=""
python=python3

. ./path.sh
. ./cmd.sh
. ./db.sh
. utils/parse_options.sh

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
start_time=$(date +%s)
# time per stage (WeNet style): stage_begin at the top of a stage, stage_end at its bottom, table at the end
stage_times=()
stage_begin() { stage_start_time=$(date +%s); }
stage_end() { stage_times+=("$1 $(( $(date +%s) - stage_start_time ))"); }
log "$0 $*"
data=${datadir}/${split}
dump=${dumpdir}/${split}
gpu_per_job=$(( ngpu > 0 ? 1 : 0 ))  # array jobs (extract, generate, infer) use one GPU each, or none

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    stage_begin
    log "Stage 1: data preparation (${corpus}, ${split}) -> ${data}"
    # from db.sh: the corpus root, or empty when the recipe makes its own data; stops saying how to get a
    # missing corpus. Called here, not above, so that stages 2-6 run without the corpus.
    db_root=$(rellm_db_root "${corpus}")
    ${python} -m rellm.bin.prepare conf/prepare.yaml --corpus "${corpus}" --data_folder "${db_root}" \
        --save_folder "${data}" --split "${split}" ${prepare_args}
    stage_end 1
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    if "${train_emotion_encoder}"; then
        stage_begin
        log "Stage 2a: training the dimensional emotion encoder on ${train_set} -> ${expdir}/emotion_encoder/${split}"
        ${cuda_cmd} --gpu "${ngpu}" "${expdir}/emotion_encoder/${split}/train.log" \
            ${python} -m rellm.bin.train_emotion_encoder conf/emotion_encoder.yaml \
            --train_manifest "${data}/${train_set}.json" --valid_manifest "${data}/${valid_set}.json" \
            --output_folder "${expdir}/emotion_encoder/${split}"
        stage_end 2a
    fi
    stage_begin
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        log "Stage 2: frozen Whisper + emotion encoder features for ${dset} (${nj} jobs) -> ${dump}/${dset}"
        ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${nj} "${dump}/${dset}/log/extract.JOB.log" \
            ${python} -m rellm.bin.extract conf/extract.yaml --manifest "${data}/${dset}.json" \
            --output_dir "${dump}/${dset}" --emotion_encoder_dir "${expdir}/emotion_encoder/${split}" \
            --shard JOB --num_shards ${nj} ${extract_args}
        ${python} -m rellm.bin.extract conf/extract.yaml --manifest "${data}/${dset}.json" \
            --output_dir "${dump}/${dset}" --emotion_encoder_dir "${expdir}/emotion_encoder/${split}" \
            --merge true --num_shards ${nj} ${extract_args}
    done
    stage_end 2
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    stage_begin
    # train/valid: RE-LLM's training targets. Test sets: the teacher's expected responses only, never used for
    # training: stage 6 scores them as the reference row of the response-emotion UA.
    for dset in ${train_set} ${valid_set} ${test_sets}; do
        tasks_arg=()
        case " ${test_sets} " in *" ${dset} "*) tasks_arg=("--tasks=[expected]") ;; esac
        log "Stage 3: expected responses for ${dset} (${gen_nj} jobs) -> ${expdir}/responses/${split}/${dset}"
        ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${gen_nj} "${expdir}/responses/${split}/${dset}/log/respond.JOB.log" \
            ${python} -m rellm.bin.respond conf/respond.yaml --manifest "${data}/${dset}.json" ${tasks_arg[@]+"${tasks_arg[@]}"} \
            --output_dir "${expdir}/responses/${split}/${dset}" --shard JOB --num_shards ${gen_nj} ${respond_args}
        ${python} -m rellm.bin.respond conf/respond.yaml --manifest "${data}/${dset}.json" ${tasks_arg[@]+"${tasks_arg[@]}"} \
            --output_dir "${expdir}/responses/${split}/${dset}" --merge true --num_shards ${gen_nj} ${respond_args}
    done
    stage_end 3
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    stage_begin
    for model in ${models}; do
        model_dir=${expdir}/${model}/${split}/seed${seed}
        log "Stage 4: two-step alignment training of ${model} -> ${model_dir}"
        ${cuda_cmd} --gpu "${ngpu}" "${model_dir}/train.log" \
            ${python} -m rellm.bin.train conf/train_${model}.yaml --ngpu "${ngpu}" --seed "${seed}" \
            --data_dir "${data}" --feats_dir "${dump}" --responses_dir "${expdir}/responses/${split}" \
            --train_set "${train_set}" --valid_set "${valid_set}" --exp_root "${expdir}" --split "${split}" \
            --output_folder "${model_dir}" ${train_args}
    done
    stage_end 4
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    stage_begin
    for system in ${systems}; do
        model_dir=${expdir}/${system}/${split}/seed${seed}
        for dset in ${test_sets}; do
            log "Stage 5: ${system} responses and SER answers on ${dset} (${infer_nj} jobs) -> ${model_dir}/infer/${dset}"
            ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${infer_nj} "${model_dir}/infer/${dset}/log/infer.JOB.log" \
                ${python} -m rellm.bin.infer conf/infer.yaml --system "${system}" --model_dir "${model_dir}" \
                --manifest "${data}/${dset}.json" --feats_dir "${dump}/${dset}" \
                --output_dir "${model_dir}/infer/${dset}" --shard JOB --num_shards ${infer_nj} ${infer_args}
            ${python} -m rellm.bin.infer conf/infer.yaml --system "${system}" --model_dir "${model_dir}" \
                --manifest "${data}/${dset}.json" --feats_dir "${dump}/${dset}" \
                --output_dir "${model_dir}/infer/${dset}" --merge true --num_shards ${infer_nj} ${infer_args}
        done
    done
    stage_end 5
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    stage_begin
    log "Stage 6: EPITOME classifiers (trained once, cached; log: ${expdir}/scores/log/epitome_train.log), scoring and RESULTS.md"
    # 2 threads: the three classifiers train in parallel processes (num_jobs in conf/epitome.yaml)
    ${train_cmd} --num_threads 2 "${expdir}/scores/log/epitome_train.log" \
        ${python} -m rellm.bin.epitome train conf/epitome.yaml
    for dset in ${test_sets}; do
        ${python} -m rellm.bin.score conf/score.yaml --systems "${systems}" --exp_root "${expdir}" \
            --split "${split}" --seed "${seed}" --test_set "${dset}" --train_set "${train_set}" \
            --output_dir "${expdir}/scores/${split}/seed${seed}/${dset}" ${score_args}
    done
    ${python} -m rellm.bin.results conf/score.yaml --corpus "${corpus}" --split "${split}" --seed "${seed}" \
        --test_sets "${test_sets}" --scores_dir "${expdir}/scores/${split}/seed${seed}" \
        --output RESULTS.md --command "$0 $*"
    stage_end 6
fi

if [ ${#stage_times[@]} -gt 0 ]; then
    log "Time per stage:"
    printf '  %-6s %10s\n' stage seconds
    for entry in "${stage_times[@]}"; do
        printf '  %-6s %10s\n' ${entry}
    done
fi
log "Successfully finished. [elapsed=$(( $(date +%s) - start_time ))s]"
