# Corpus locations. Set them in the environment (IEMOCAP=/data/IEMOCAP_full_release ./run.sh) or in
# an ignored db.local.sh next to run.sh; the environment wins over db.local.sh.
# Every recipe's db.sh is a symlink to egs/TEMPLATE/db.sh.

#
# Checkpoints the paper recipes need, downloaded by the user (never by the recipes):
#   BLSP_EMO       the released BLSP-Emo checkpoint folder (stage 4 imports it with blsp_emo_source=released)
#   QWEN_7B_CHAT   the Qwen-7B-Chat snapshot; the registry name qwen-7b-chat in conf/*.yaml imports it once
#                  into $RELLM_CACHE (python -m rellm.pretrained import-qwen1), so it is exported for Python.

_rellm_db_env_IEMOCAP=${IEMOCAP-}
_rellm_db_env_ESD=${ESD-}
_rellm_db_env_MSP_PODCAST=${MSP_PODCAST-}
_rellm_db_env_BLSP_EMO=${BLSP_EMO-}
_rellm_db_env_QWEN_7B_CHAT=${QWEN_7B_CHAT-}
_rellm_db_env_LIBRISPEECH=${LIBRISPEECH-}
IEMOCAP=
ESD=
MSP_PODCAST=
BLSP_EMO=
QWEN_7B_CHAT=
LIBRISPEECH=              # ASR data for training step 1 (run.sh --step1_data librispeech)
if [ -f db.local.sh ]; then
    . ./db.local.sh
fi
IEMOCAP=${_rellm_db_env_IEMOCAP:-${IEMOCAP}}
ESD=${_rellm_db_env_ESD:-${ESD}}
MSP_PODCAST=${_rellm_db_env_MSP_PODCAST:-${MSP_PODCAST}}
BLSP_EMO=${_rellm_db_env_BLSP_EMO:-${BLSP_EMO}}
QWEN_7B_CHAT=${_rellm_db_env_QWEN_7B_CHAT:-${QWEN_7B_CHAT}}
LIBRISPEECH=${_rellm_db_env_LIBRISPEECH:-${LIBRISPEECH}}
unset _rellm_db_env_IEMOCAP _rellm_db_env_ESD _rellm_db_env_MSP_PODCAST _rellm_db_env_BLSP_EMO _rellm_db_env_QWEN_7B_CHAT \
    _rellm_db_env_LIBRISPEECH
if [ -n "${QWEN_7B_CHAT}" ]; then
    export QWEN_7B_CHAT
else
    unset QWEN_7B_CHAT
fi

# rellm_checkpoint VAR: print the checkpoint folder in VAR (BLSP_EMO), or stop saying where to get it.
rellm_checkpoint() {
    local var=$1 root what source
    case "${var}" in
        BLSP_EMO)
            what="the released BLSP-Emo checkpoint (a Blsp2Model folder: config.json, pytorch_model*.bin or *.safetensors, qwen.tiktoken, preprocessor_config.json)"
            source="https://huggingface.co/cwang621/blsp-emo (linked from https://github.com/cwang621/blsp-emo)"
            ;;
        *)
            echo "ERROR: unknown checkpoint variable '${var}' in rellm_checkpoint" >&2
            return 1
            ;;
    esac
    root=${!var}
    if [ -z "${root}" ] || [ ! -d "${root}" ]; then
        if [ -z "${root}" ]; then
            echo "ERROR: ${var} is not set: blsp_emo_source=released needs ${what}." >&2
        else
            echo "ERROR: ${var}=${root} is not a folder (expected ${what})." >&2
        fi
        echo "  Get it from: ${source}" >&2
        echo "  Then run '${var}=/path/to/it ./run.sh ...' or put '${var}=/path/to/it' in db.local.sh;" >&2
        echo "  or train BLSP-Emo here with --blsp_emo_source trained." >&2
        return 1
    fi
    echo "${root}"
}

# rellm_db_root CORPUS: print the root folder of CORPUS for stage 1, or nothing for a recipe that makes
# its own data (mini). A licensed corpus that is not configured or not found is an error saying how to
# get it and where to point the variable. Use as: db_root=$(rellm_db_root "${corpus}")
rellm_db_root() {
    local corpus=$1 var layout source root
    case "${corpus}" in
        mini|mini_asr)
            return 0
            ;;
        librispeech)
            var=LIBRISPEECH
            layout="LibriSpeech/{train-clean-100,dev-clean}/<speaker>/<chapter>/{*.flac,<speaker>-<chapter>.trans.txt}"
            source="https://www.openslr.org/12 (CC BY 4.0)"
            ;;
        iemocap)
            var=IEMOCAP
            layout="IEMOCAP_full_release/Session{1..5}/{sentences/wav,dialog/EmoEvaluation}/..."
            source="https://sail.usc.edu/iemocap/ (licence request form, USC SAIL)"
            ;;
        esd)
            var=ESD
            layout="ESD/00{01..20}/{Neutral,Happy,Angry,Sad,Surprise}/*.wav (speakers 0011-0020 are English)"
            source="https://github.com/HLTSingapore/Emotional-Speech-Data (licence agreement, NUS HLT)"
            ;;
        msp_podcast)
            var=MSP_PODCAST
            layout="MSP-PODCAST/{Audios/*.wav,Labels/labels_consensus.csv,Partitions.txt}"
            source="https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html (academic licence, UT Dallas)"
            ;;
        *)
            echo "ERROR: unknown corpus '${corpus}' in rellm_db_root; expected iemocap, esd, msp_podcast, librispeech, mini or mini_asr" >&2
            return 1
            ;;
    esac
    root=${!var}
    # Only "set and a folder" is checked here: the preparer validates the layout itself (it accepts
    # Audio/ or Audios/, a Mandarin-only ESD, a root one level above the release) and names what is missing.
    if [ -z "${root}" ] || [ ! -d "${root}" ]; then
        if [ -z "${root}" ]; then
            echo "ERROR: ${var} is not set: stage 1 needs the ${corpus} corpus root." >&2
        else
            echo "ERROR: ${var}=${root} is not a folder (expected the ${corpus} corpus root)." >&2
        fi
        echo "  Expected layout: ${layout}" >&2
        echo "  Get the corpus from: ${source}" >&2
        echo "  Then run '${var}=/path/to/corpus ./run.sh ...' or put '${var}=/path/to/corpus' in db.local.sh." >&2
        return 1
    fi
    echo "${root}"
}
