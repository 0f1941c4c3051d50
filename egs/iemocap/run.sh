#!/usr/bin/env bash
# RE-LLM recipe: speech-LLM + emotion nuance module, from data prep to RESULTS.md.
# Every setting is a flag: ./run.sh --stage 3 --stop_stage 5 --nj 8 (./run.sh --help lists them all).
# New cluster? First: ./run.sh --dry_run true (small offline models, CPU, data_dry/ dump_dry/ exp_dry/).
# Stages: 1 data prep | 2 features | 3 expected responses | 4 alignment training
#         5 inference (responses + SER) | 6 scoring and RESULTS.md

# The recipe's settings, as flags of the stages every recipe runs (egs/TEMPLATE/stages.sh); after "--", the
# command as typed, whose flags come after these and win. tools/new_recipe.sh NAME corpus=C VAR=VALUE writes
# these lines for a new recipe; what this recipe changes in the template's stage configs is conf/overlay.yaml.
exec ./stages.sh \
    --corpus iemocap \
    --split fold5 \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --train_emotion_encoder false \
    --blsp_emo_source released \
    --step1_data librispeech \
    --nj 4 \
    --gen_nj 4 \
    --infer_nj 4 \
    --ngpu 1 \
    --results RESULTS.md \
    -- "$0" "$@"
