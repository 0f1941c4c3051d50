"""Where an EPITOME config's classifiers live: ``<cache>/epitome/<encoder tag>/`` (stage 6 and ``rellm.bin.epitome``).

``cache``: the config's ``cache_dir``, else ``$RELLM_CACHE`` or ``~/.cache/rellm`` (shared by every recipe).
"""
from pathlib import Path


def cache_root(hp):
    from rellm.scoring.epitome.data import default_cache_root

    return Path(hp["cache_dir"]) if hp.get("cache_dir") else default_cache_root()


def model_root(hp):
    from rellm.scoring.epitome.training import epitome_cache_dir

    return epitome_cache_dir(cache_root(hp), hp["encoder"], hp.get("encoder_tag"))
