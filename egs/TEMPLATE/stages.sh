#!/usr/bin/env bash
# The six stages every recipe runs. A recipe's run.sh calls it with the recipe's settings as flags, then "--" and
# the command the user typed:   ./stages.sh --corpus iemocap --split fold5 ... -- "$0" "$@"
# (utils/parse_options.sh: the user's flags are read after the recipe's and win; ./run.sh --help shows run.sh's
# header and every flag below with the recipe's value). egs/<recipe>/stages.sh is a link to
# egs/TEMPLATE/stages.sh (like path.sh), so the stage logic is changed here, once, for every recipe.
# Top to bottom: every flag with its default, the command line, path.sh, cmd.sh, db.sh, what each stage gets on
# top of its config (the recipe's conf/overlay.yaml, a dry run's swaps, --ablation, --overwrite), stages 1-6.
set -euo pipefail

# Every flag with its default. Plain assignments: an exported variable that happens to share a flag's name
# (stage, split, python) changes nothing; only the flags do.
# ---- recipe settings (a recipe's run.sh passes its own; egs/TEMPLATE/run.sh lists them) --------------------
corpus=""                 # preparer name: iemocap | esd | msp_podcast | mini (required: run.sh passes it)
split=official            # protocol: official, or fold1..fold5 (IEMOCAP leave-one-session-out)
train_set=train
valid_set=valid
test_sets=test            # space-separated
train_emotion_encoder=false  # true: train a small dimensional emotion encoder first (no pretrained one offline)
blsp_emo_source=released  # released: stage 4 imports the released BLSP-Emo (db.sh: BLSP_EMO) | trained: train it here
step1_data=""             # ASR data for training step 1 (conf/prepare_step1.yaml): librispeech | mini_asr; "" = SER train set
emotion_encoder_conf=conf/emotion_encoder.yaml  # stage 2a config (train_emotion_encoder=true)

# ---- pipeline settings ---------------------------------------------------------
dry_run=false             # true: check the whole recipe first: small offline models, CPU, tiny subsets, *_dry roots
stage=1
stop_stage=6
nj=4                      # parallel jobs for feature extraction
gen_nj=4                  # parallel jobs for expected-response generation
infer_nj=4                # parallel jobs for inference
ngpu=1                    # GPUs for training (torchrun); 0 = CPU
cpu_train_threads=2       # with ngpu=0: CPU threads of the one-job training stages (2a, 4), which run alone
seed=1
models="blsp_emo blsp_emo_ft rellm"  # trained systems (conf/train_<model>.yaml); blsp_emo_ft: the matched control
systems="text_only blsp_emo blsp_emo_ft rellm"  # scored systems
ablation=""               # an ablation of RE-LLM (python -m rellm.recipes.ablations lists them): trains
                          # RE-LLM with its overrides under --tag NAME, scored beside the main baselines
tag=""                    # stages 4-6 write under <expdir>/<tag>/ and RESULTS_<tag>.md (an ablation's own)
datadir=data
dumpdir=dump
expdir=exp
# ---- each stage's extra --key=value overrides of its config (after the recipe's conf/overlay.yaml and a dry
# run's; an unknown key is an error) ----
prepare_args=""           # stage 1, conf/prepare.yaml, e.g. "--iemocap_classes=5"
step1_prepare_args=""     # stage 1, step-1 ASR data (conf/prepare_step1.yaml), e.g. "--num_sentences=20"
emotion_encoder_args=""   # stage 2a (--emotion_encoder_conf), e.g. "--epochs=30"
extract_args=""           # stage 2, conf/extract.yaml
respond_args=""           # stage 3, conf/respond.yaml
train_args=""             # stage 4, every model (conf/train_<model>.yaml)
infer_args=""             # stage 5, conf/infer.yaml
score_args=""             # stage 6 scoring, conf/score.yaml
blsp_emo_args=""          # stage-4 overrides for one model only (after --train_args)
blsp_emo_ft_args=""
rellm_args=""
import_args=""            # stage 4 with blsp_emo_source=released (conf/import_blsp_emo.yaml)
epitome_args=""           # EPITOME training (conf/epitome.yaml), e.g. "--device=cuda --num_jobs=3"
overwrite=false           # true: redo every stage's outputs even when made with other options
results=RESULTS.md        # written by stage 6
python=python3

. utils/parse_options.sh
[ -n "${corpus}" ] || { echo "ERROR: ${command_line[0]##*/}: --corpus is required (a recipe's run.sh passes it)" >&2; exit 1; }

# The flags above that carry a stage's overrides, one entry per stage command: the first flag of an entry goes to
# every call of that stage, the others (one per model) follow it on that model's call. The one list of them:
# --overwrite true extends the first flag of each entry (so --overwrite=true once per call), the dry run puts its
# swaps in front of each, and test/consistency checks that it names every --*_args flag of --help.
stage_args=(prepare_args step1_prepare_args emotion_encoder_args extract_args respond_args
            "train_args blsp_emo_args blsp_emo_ft_args rellm_args" import_args infer_args epitome_args score_args)

. ./path.sh
. ./cmd.sh
. ./db.sh

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
start_time=$(date +%s)
# time per stage (WeNet style): stage_begin at the top of a stage, stage_end at its bottom, table at the end
stage_times=()
stage_begin() { stage_start_time=$(date +%s); }
stage_end() { stage_times+=("$1 $(( $(date +%s) - stage_start_time ))"); }
log "${command_line[*]}"
run_command=$(printf '%q ' "${command_line[@]}")  # quoted: RESULTS.md records it so that it can be pasted back
# The same command for the Python stages, which record it beside their outputs (where each output came from).
export RELLM_RECIPE_COMMAND=${run_command% }

# What the stages get on top of their configs, from python -m rellm.recipes.stage_args: conf_overrides[conf/X.yaml]
# holds the recipe's own values for conf/X.yaml (conf/overlay.yaml), passed before the stage's --*_args; with
# --dry_run true, the flags a dry run sets and every --*_args with the dry run's swaps in front of the user's
# (rellm/recipes/dry_run.yaml). It answers NUL-terminated NAME=VALUE records, assigned here as values: nothing
# it prints runs as shell code, and a NAME must be a variable this script already has (a flag).
declare -A conf_overrides=()
dry_run_max_per_set=""
if [ -f conf/overlay.yaml ] || "${dry_run}"; then
    helper_args=(--conf_dir=conf --dry_run="${dry_run}" --split="${split}" --blsp_emo_source="${blsp_emo_source}"
                 --blsp_emo="${BLSP_EMO:-}")
    for entry in "${stage_args[@]}"; do
        for flag in ${entry}; do helper_args+=("--${flag}=${!flag}"); done
    done
    while IFS= read -r -d '' record; do
        name=${record%%=*}
        value=${record#*=}
        case "${name}" in
            conf/*) conf_overrides["${name}"]=${value} ;;
            log) log "Dry run: ${value}" ;;
            *)
                if ! [[ "${name}" =~ ^[a-z_][a-z0-9_]*$ ]] || ! [[ -v "${name}" ]]; then
                    echo "ERROR: rellm.recipes.stage_args set '${name}', which is not a setting of stages.sh" >&2
                    exit 1
                fi
                printf -v "${name}" '%s' "${value}"
                ;;
        esac
    done < <(${python} -m rellm.recipes.stage_args "${helper_args[@]}")
    wait $! || exit 1  # its error is on stderr
fi
if [ -n "${ablation}" ]; then
    # one factor of RE-LLM changed (rellm/recipes/ablations.py): only RE-LLM is trained, into its own tag; the
    # baselines and the matched control are the main run's
    ablation_args=$(${python} -m rellm.recipes.ablations args "${ablation}")
    tag=${tag:-${ablation}}
    models=rellm
    rellm_args="${rellm_args} ${ablation_args}"
    log "ablation ${ablation}: RE-LLM with ${ablation_args} -> ${expdir}/${tag}/, RESULTS_${tag}.md"
fi
if "${overwrite}"; then
    for entry in "${stage_args[@]}"; do
        read -r flag _ <<< "${entry}"  # the per-model flags follow it on the same call
        printf -v "${flag}" '%s' "${!flag} --overwrite=true"
    done
fi
data=${datadir}/${split}
dump=${dumpdir}/${split}
tagdir=${expdir}${tag:+/${tag}}  # where stages 4-6 write: a tag (an ablation) keeps its runs apart from the main ones
gpu_per_job=$(( ngpu > 0 ? 1 : 0 ))  # array jobs (extract, generate, infer) use one GPU each, or none
train_threads=""  # the sharded stages use one thread per job; a training job alone on the CPU may use more
[ "${ngpu}" -eq 0 ] && train_threads="--num_threads ${cpu_train_threads}"
# Step 1 (semantic alignment on ASR data) runs only when BLSP-Emo is trained here: the released one went through it.
step1=${step1_data}
if [ "${blsp_emo_source}" = released ] && [ -n "${step1}" ]; then
    log "blsp_emo_source=released: no step-1 data needed (${step1_data} is used with --blsp_emo_source trained)"
    step1=""
elif "${dry_run}" && [ -n "${step1}" ]; then
    log "dry run: step 1 trains on the SER subset's continuations, not on ${step1_data}"
    step1=""
fi
${python} -m rellm.bin.check_gpu --ngpu "${ngpu}" --dry_run "${dry_run}" --stage "${stage}" --stop_stage "${stop_stage}" --corpus "${corpus}" --cuda_cmd "${cuda_cmd}"  # --ngpu > 0, no GPU: stop now

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    stage_begin
    log "Stage 1: data preparation (${corpus}, ${split}) -> ${data}"
    # from db.sh: the corpus root, or empty when the recipe makes its own data; stops saying how to get a
    # missing corpus. Called here, not above, so that stages 2-6 run without the corpus.
    db_root=$(rellm_db_root "${corpus}")
    ${python} -m rellm.bin.prepare conf/prepare.yaml --corpus "${corpus}" --data_folder "${db_root}" \
        --save_folder "${data}" --split "${split}" ${conf_overrides[conf/prepare.yaml]-} ${prepare_args}
    if "${dry_run}"; then
        ${python} -m rellm.bin.dry_run subset --data_dir "${data}" --max_per_set "${dry_run_max_per_set}" \
            --sets "${train_set} ${valid_set} ${test_sets}"
    fi
    if [ -n "${step1}" ]; then
        log "Stage 1: speech + transcripts for training step 1 (${step1}) -> ${datadir}/${step1}"
        step1_root=$(rellm_db_root "${step1}")
        ${python} -m rellm.bin.prepare conf/prepare_step1.yaml --corpus "${step1}" \
            --data_folder "${step1_root}" --save_folder "${datadir}/${step1}" \
            ${conf_overrides[conf/prepare_step1.yaml]-} ${step1_prepare_args}
    fi
    stage_end 1
fi

# step 1's ASR sets (train and valid of data/<step1_data>): features (stage 2) and continuations (stage 3)
step1_sets=""
[ -n "${step1}" ] && step1_sets="${step1}/train ${step1}/valid"

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    if "${train_emotion_encoder}"; then
        stage_begin
        if [ ! -f "${emotion_encoder_conf}" ]; then
            echo "ERROR: train_emotion_encoder=true needs ${emotion_encoder_conf}: copy egs/mini/conf/emotion_encoder.yaml" \
                "there (or pass --emotion_encoder_conf PATH), or run ./run.sh --dry_run true, which brings its own" >&2
            exit 1
        fi
        log "Stage 2a: training the dimensional emotion encoder on ${train_set} -> ${expdir}/emotion_encoder/${split}"
        ${cuda_cmd} --gpu "${ngpu}" ${train_threads} "${expdir}/emotion_encoder/${split}/train.log" \
            ${python} -m rellm.bin.train_emotion_encoder "${emotion_encoder_conf}" \
            --train_manifest "${data}/${train_set}.json" --valid_manifest "${data}/${valid_set}.json" \
            --output_folder "${expdir}/emotion_encoder/${split}" ${conf_overrides[${emotion_encoder_conf}]-} \
            ${emotion_encoder_args}
        stage_end 2a
    fi
    stage_begin
    extract_sets=""
    for dset in ${train_set} ${valid_set} ${test_sets}; do extract_sets="${extract_sets} ${split}/${dset}"; done
    for dset in ${extract_sets} ${step1_sets}; do  # <data name>/<set>: the SER sets, then step 1's ASR sets
        log "Stage 2: frozen Whisper + emotion encoder features for ${dset} (${nj} jobs) -> ${dumpdir}/${dset}"
        ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${nj} "${dumpdir}/${dset}/log/extract.JOB.log" \
            ${python} -m rellm.bin.extract conf/extract.yaml --manifest "${datadir}/${dset}.json" \
            --output_dir "${dumpdir}/${dset}" --emotion_encoder_dir "${expdir}/emotion_encoder/${split}" \
            --shard JOB --num_shards ${nj} ${conf_overrides[conf/extract.yaml]-} ${extract_args}
        ${python} -m rellm.bin.extract conf/extract.yaml --manifest "${datadir}/${dset}.json" \
            --output_dir "${dumpdir}/${dset}" --emotion_encoder_dir "${expdir}/emotion_encoder/${split}" \
            --merge true --num_shards ${nj} ${conf_overrides[conf/extract.yaml]-} ${extract_args}
    done
    stage_end 2
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    stage_begin
    # Which sets the teacher answers, and its tasks for each (expected responses, plain continuations), decided here:
    # - the SER train and valid sets: expected responses (step 2), plus continuations when step 1 trains on them
    #   (BLSP-Emo trained here without step-1 data: no --tasks, both);
    # - the SER test sets: expected responses only, never used for training: stage 6 scores them as the reference
    #   row of the response-emotion UA;
    # - step 1's ASR sets: continuations only.
    train_tasks="--tasks=[expected]"
    [ -z "${step1}" ] && [ "${blsp_emo_source}" = trained ] && train_tasks=""
    respond_sets=()   # <data name>/<set>
    respond_tasks=()  # its --tasks option ("" = every task)
    for dset in ${train_set} ${valid_set}; do respond_sets+=("${split}/${dset}"); respond_tasks+=("${train_tasks}"); done
    for dset in ${test_sets}; do respond_sets+=("${split}/${dset}"); respond_tasks+=("--tasks=[expected]"); done
    for dset in ${step1_sets}; do respond_sets+=("${dset}"); respond_tasks+=("--tasks=[continuation]"); done
    for i in "${!respond_sets[@]}"; do
        dset=${respond_sets[$i]}
        tasks=${respond_tasks[$i]}
        log "Stage 3: teacher responses for ${dset} (${gen_nj} jobs) -> ${expdir}/responses/${dset}"
        ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${gen_nj} "${expdir}/responses/${dset}/log/respond.JOB.log" \
            ${python} -m rellm.bin.respond conf/respond.yaml --manifest "${datadir}/${dset}.json" \
            --output_dir "${expdir}/responses/${dset}" --shard JOB --num_shards ${gen_nj} ${tasks} \
            ${conf_overrides[conf/respond.yaml]-} ${respond_args}
        ${python} -m rellm.bin.respond conf/respond.yaml --manifest "${datadir}/${dset}.json" \
            --output_dir "${expdir}/responses/${dset}" --merge true --num_shards ${gen_nj} ${tasks} \
            ${conf_overrides[conf/respond.yaml]-} ${respond_args}
    done
    stage_end 3
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    stage_begin
    step1_args=""
    [ -n "${step1}" ] && step1_args="--step1_data_dir ${datadir}/${step1} --step1_feats_dir ${dumpdir}/${step1} --step1_responses_dir ${expdir}/responses/${step1}"
    for model in ${models}; do
        model_dir=${tagdir}/${model}/${split}/seed${seed}
        if [ "${model}" = blsp_emo ] && [ "${blsp_emo_source}" = released ]; then
            # The paper's baseline and RE-LLM's starting point: the released checkpoint, not one trained here.
            blsp_emo_root=$(rellm_checkpoint BLSP_EMO)
            log "Stage 4: importing the released BLSP-Emo ${blsp_emo_root} -> ${model_dir}"
            ${python} -m rellm.bin.import_blsp_emo conf/import_blsp_emo.yaml --src "${blsp_emo_root}" \
                --output_folder "${model_dir}" ${conf_overrides[conf/import_blsp_emo.yaml]-} ${import_args}
            continue
        elif [ "${blsp_emo_source}" != released ] && [ "${blsp_emo_source}" != trained ]; then
            echo "ERROR: --blsp_emo_source must be 'released' or 'trained', got '${blsp_emo_source}'" >&2
            exit 1
        fi
        model_args_var=${model}_args
        log "Stage 4: two-step alignment training of ${model} -> ${model_dir}"
        ${cuda_cmd} --gpu "${ngpu}" ${train_threads} "${model_dir}/train.log" \
            ${python} -m rellm.bin.train conf/train_${model}.yaml --ngpu "${ngpu}" --seed "${seed}" \
            --data_dir "${data}" --feats_dir "${dump}" --responses_dir "${expdir}/responses/${split}" \
            --train_set "${train_set}" --valid_set "${valid_set}" --exp_root "${expdir}" --split "${split}" \
            --output_folder "${model_dir}" ${step1_args} ${conf_overrides[conf/train_${model}.yaml]-} ${train_args} \
            ${!model_args_var:-}
    done
    stage_end 4
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    stage_begin
    for system in ${systems}; do
        model_dir=${expdir}/${system}/${split}/seed${seed}
        # with a tag, the systems trained under it are read from there; the others are the main run's
        case " ${models} " in *" ${system} "*) model_dir=${tagdir}/${system}/${split}/seed${seed} ;; esac
        for dset in ${test_sets}; do
            log "Stage 5: ${system} responses and SER answers on ${dset} (${infer_nj} jobs) -> ${model_dir}/infer/${dset}"
            ${cuda_cmd} --gpu ${gpu_per_job} JOB=1:${infer_nj} "${model_dir}/infer/${dset}/log/infer.JOB.log" \
                ${python} -m rellm.bin.infer conf/infer.yaml --system "${system}" --model_dir "${model_dir}" \
                --manifest "${data}/${dset}.json" --feats_dir "${dump}/${dset}" \
                --output_dir "${model_dir}/infer/${dset}" --shard JOB --num_shards ${infer_nj} \
                ${conf_overrides[conf/infer.yaml]-} ${infer_args}
            ${python} -m rellm.bin.infer conf/infer.yaml --system "${system}" --model_dir "${model_dir}" \
                --manifest "${data}/${dset}.json" --feats_dir "${dump}/${dset}" \
                --output_dir "${model_dir}/infer/${dset}" --merge true --num_shards ${infer_nj} \
                ${conf_overrides[conf/infer.yaml]-} ${infer_args}
        done
    done
    stage_end 5
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    stage_begin
    log "Stage 6: EPITOME classifiers (trained once, cached; log: ${expdir}/scores/log/epitome_train.log), scoring and RESULTS.md"
    # 2 threads: the three classifiers train in parallel processes (num_jobs in conf/epitome.yaml)
    # --save_config: the effective config (conf/epitome.yaml + --epitome_args), which names the classifiers scored with
    ${train_cmd} --num_threads 2 "${expdir}/scores/log/epitome_train.log" \
        ${python} -m rellm.bin.epitome train conf/epitome.yaml --save_config "${expdir}/scores/epitome.yaml" \
            ${conf_overrides[conf/epitome.yaml]-} ${epitome_args}
    for dset in ${test_sets}; do
        ${python} -m rellm.bin.score conf/score.yaml --systems "${systems}" --exp_root "${expdir}" --tag "${tag}" \
            --corpus "${corpus}" --split "${split}" --seed "${seed}" --test_set "${dset}" --train_set "${train_set}" \
            --valid_set "${valid_set}" --data_dir "${data}" \
            --output_dir "${tagdir}/scores/${split}/seed${seed}/${dset}" \
            --epitome_config "${expdir}/scores/epitome.yaml" ${conf_overrides[conf/score.yaml]-} ${score_args}
    done
    # RESULTS.md (an ablation: RESULTS_<tag>.md) from every scored split and seed, the summary when there are several
    ${python} -m rellm.bin.results conf/score.yaml --corpus "${corpus}" --split "${split}" --seed "${seed}" \
        --test_sets "${test_sets}" --exp_root "${expdir}" --tag "${tag}" \
        --output "${results}" --command "${run_command% }" --dry_run "${dry_run}" --dump_dir "${dump}" \
        ${conf_overrides[conf/score.yaml]-}
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
