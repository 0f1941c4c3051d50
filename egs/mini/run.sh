#!/usr/bin/env bash
# RE-LLM recipe: speech-LLM + emotion nuance module, from data prep to RESULTS.md.
# Every setting is a flag: ./run.sh --stage 3 --stop_stage 5 --nj 8 (./run.sh --help lists them all).
# New cluster? First: ./run.sh --dry_run true (small offline models, CPU, data_dry/ dump_dry/ exp_dry/).
# Stages: 1 data prep | 2 features | 3 expected responses | 4 alignment training
#         5 inference (responses + SER) | 6 scoring and RESULTS.md

# The recipe's settings, as flags of the stages every recipe runs (egs/TEMPLATE/stages.sh); after "--", the
# command as typed, whose flags come after these and win. tools/new_recipe.sh NAME corpus=C VAR=VALUE writes
# these lines for a new recipe. The stage configs are this recipe's own conf/*.yaml (CPU-sized; the paper
# recipes link egs/TEMPLATE/conf's).
exec ./stages.sh \
    --corpus mini \
    --split official \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_emotion_encoder true \
    --blsp_emo_source trained \
    --step1_data mini_asr \
    --nj 2 \
    --gen_nj 2 \
    --infer_nj 2 \
    --ngpu 0 \
    --results RESULTS.md \
    -- "$0" "$@"
