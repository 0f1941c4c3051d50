"""Where the trained EPITOME classifiers live: ``<cache>/epitome/<encoder tag>/<mechanism>/``.

    model.safetensors  the trained weights minus the frozen seeker encoder (reloaded from the base model)
    config.json   encoder name, max_len, response_max_len, dropout: what loading needs
    split.json    the train/dev/test ids and the split seed
    metrics.json  dev and test metrics, training time, data report
    train_log.txt one line per evaluation
    .done.train   options fingerprint (rellm.utils.stage)

    training_time.json (beside the mechanism folders) wall and CPU seconds of the last training
    .lock.train   held while a process trains into this cache (two runs or users sharing $RELLM_CACHE
                  take turns: the second waits, then reuses what the first trained)

A ``model.pt`` from rellm versions before safetensors is never unpickled: that classifier is retrained.
"""
import re
from pathlib import Path

from rellm.scoring.epitome.data import MECHANISMS
from rellm.utils.io import read_json

MODEL_FILE = "model.safetensors"


def cache_root(hp):
    """An EPITOME config's cache: its ``cache_dir``, else ``$RELLM_CACHE`` or ``~/.cache/rellm`` (shared by every recipe)."""
    from rellm.scoring.epitome.data import default_cache_root

    return Path(hp["cache_dir"]) if hp.get("cache_dir") else default_cache_root()


def model_root(hp):
    """Where an EPITOME config's classifiers live: ``<cache>/epitome/<encoder tag>/`` (stage 6, rellm.bin.epitome)."""
    return epitome_cache_dir(cache_root(hp), hp["encoder"], hp.get("encoder_tag"))


def encoder_tag(encoder, tag=None):
    """Folder name of an encoder's models in the cache: ``tag`` or a filesystem-safe form of its name."""
    if tag:
        return str(tag)
    name = Path(str(encoder).rstrip("/")).name or str(encoder)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def epitome_cache_dir(cache_root, encoder, tag=None):
    return Path(cache_root) / "epitome" / encoder_tag(encoder, tag)


def load_metrics(root, mechanisms=MECHANISMS):
    """``{mech: {"accuracy", "macro_f1", "iou_f1"}}`` from the cached test metrics."""
    out = {}
    for mech in mechanisms:
        path = Path(root) / mech / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"no trained EPITOME {mech} classifier in {Path(root) / mech}; "
                                    "run `python -m rellm.bin.epitome train conf/epitome.yaml` first")
        test = read_json(path)["test"]
        out[mech] = {k: test[k] for k in ("accuracy", "macro_f1", "iou_f1")}
    return out
