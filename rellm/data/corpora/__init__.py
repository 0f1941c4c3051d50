"""Stage-1 preparers, one per corpus: ``prepare_<corpus>(data_folder, save_folder, ..., skip_prep=False)``.

``PREPARERS`` maps the recipe's ``corpus`` name to its preparer so that
``python -m rellm.bin.prepare`` dispatches by name. The mini corpus is imported
only when used: its synthesiser pulls in eSpeak NG, which the real corpora do not need.
"""

import importlib

from rellm.data.corpora.esd import prepare_esd
from rellm.data.corpora.iemocap import prepare_iemocap
from rellm.data.corpora.librispeech import prepare_librispeech
from rellm.data.corpora.msp_podcast import prepare_msp_podcast

# name -> "module:function" of preparers imported on first use
LAZY_PREPARERS = {"mini": "rellm.data.corpora.mini:prepare_mini",
                  "mini_asr": "rellm.data.corpora.mini_asr:prepare_mini_asr"}


def _load(target):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def prepare_mini(*args, **kwargs):
    """Lazy entry to ``rellm.data.corpora.mini.prepare_mini`` (the synthetic eSpeak NG corpus)."""
    return _load(LAZY_PREPARERS["mini"])(*args, **kwargs)


def prepare_mini_asr(*args, **kwargs):
    """Lazy entry to ``rellm.data.corpora.mini_asr.prepare_mini_asr`` (neutral eSpeak NG speech for step 1)."""
    return _load(LAZY_PREPARERS["mini_asr"])(*args, **kwargs)


PREPARERS = {
    "iemocap": prepare_iemocap,
    "esd": prepare_esd,
    "msp_podcast": prepare_msp_podcast,
    "mini": prepare_mini,
    "librispeech": prepare_librispeech,
    "mini_asr": prepare_mini_asr,
}


def get_preparer(corpus):
    """The preparer function of ``corpus`` itself (lazy ones imported now, so their signature is real)."""
    if corpus in LAZY_PREPARERS:
        return _load(LAZY_PREPARERS[corpus])
    try:
        return PREPARERS[corpus]
    except KeyError:
        raise KeyError(f"unknown corpus {corpus!r}; known: {', '.join(sorted(PREPARERS))}") from None


__all__ = ["PREPARERS", "get_preparer", "prepare_esd", "prepare_iemocap", "prepare_librispeech", "prepare_mini",
           "prepare_mini_asr", "prepare_msp_podcast"]
