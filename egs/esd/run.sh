#!/usr/bin/env bash
# RE-LLM recipe: speech-LLM + emotion nuance module, from data prep to RESULTS.md.
# Every setting is a flag, the recipe's below and the pipeline's in stages.sh: ./run.sh --stage 3 --stop_stage 5 --nj 8
# New cluster? First: ./run.sh --dry_run true (small offline models, CPU, data_dry/ dump_dry/ exp_dry/).
# Stages: 1 data prep | 2 features | 3 expected responses | 4 alignment training
#         5 inference (responses + SER) | 6 scoring and RESULTS.md

# ---- recipe settings (the lines a new recipe changes; tools/new_recipe.sh NAME corpus=C VAR=VALUE sets them) ----
corpus=esd               # preparer name (rellm/data/corpora/<corpus>.py): iemocap | esd | msp_podcast | mini
split=official           # protocol: official, or fold1..fold5 (IEMOCAP leave-one-session-out)
train_set=train
valid_set=valid
test_sets="test"         # space-separated
train_emotion_encoder=false  # true: train a small dimensional emotion encoder first (no pretrained one offline)
blsp_emo_source=released     # released: stage 4 imports the released BLSP-Emo (db.sh: BLSP_EMO) | trained: train it here
step1_data=librispeech   # ASR data for training step 1 (conf/prepare_step1.yaml): librispeech | mini_asr; "" = SER train set
nj=4                     # parallel jobs for feature extraction
gen_nj=4                 # parallel jobs for expected-response generation
infer_nj=4               # parallel jobs for inference
ngpu=1                   # GPUs for training (torchrun); 0 = CPU
results=RESULTS.md       # written by stage 6

# Stages 1-6, the same in every recipe (egs/TEMPLATE/stages.sh; ./run.sh --help lists all its flags)
. ./stages.sh "$@"
