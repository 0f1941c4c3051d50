"""Stage 2a as the recipe runs it (``rellm.bin.train_emotion_encoder``): one run per output folder (its lock), the
options and inputs of the done marker, then the training of ``rellm.training.emotion_encoder_training`` (torch is
imported only when there is work: a trained encoder is skipped in a second)."""
from pathlib import Path

from rellm.data.manifest import read_data_root, read_manifest
from rellm.utils.config import ConfigError, resolved_yaml
from rellm.utils.io import atomic_write_text
from rellm.utils.lineage import Inputs
from rellm.utils.lock import OutputLock
from rellm.utils.logging import setup_logging
from rellm.utils.stage import DoneMarker


def load_entries(manifest):
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist; run stage 1 first")
    return read_manifest(manifest, read_data_root(manifest.parent))


def run_stage(hp, config_path, overrides):
    """Stage 2a for the config ``hp`` (read from ``config_path`` with ``overrides``, recorded as
    ``hyperparams.yaml``); returns the training summary, None when already trained."""
    if not hp["output_folder"]:
        raise ConfigError("--output_folder is required (exp/emotion_encoder/<split>)")
    out = Path(hp["output_folder"])
    with OutputLock(out, "train_emotion_encoder", what=f"the emotion encoder {out}"):  # before its log is opened
        return _train(hp, config_path, overrides, out)


def _train(hp, config_path, overrides, out):
    logger = setup_logging(out / "log.txt")
    train_entries, valid_entries = load_entries(hp["train_manifest"]), load_entries(hp["valid_manifest"])
    model_keys = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "conv_dim", "num_categories",
                  "dropout", "normalize_waveform")
    train_keys = ("epochs", "batch_size", "lr", "weight_decay", "category_weight", "max_seconds", "seed",
                  "train_feature_encoder")
    options = {k: hp[k] for k in model_keys + train_keys}
    options.update(train_manifest=str(Path(hp["train_manifest"]).resolve()),
                   valid_manifest=str(Path(hp["valid_manifest"]).resolve()),
                   train_size=len(train_entries), valid_size=len(valid_entries))
    inputs = Inputs()
    for name in ("train_manifest", "valid_manifest"):
        manifest = Path(hp[name])
        inputs.file(name, manifest).audio(name.replace("manifest", "audio"), manifest, read_data_root(manifest.parent))
    marker = DoneMarker(out, "train_emotion_encoder", stage="2a")
    if marker.is_done(options, overwrite=bool(hp["overwrite"]), inputs=inputs):
        logger.info("emotion encoder in %s is trained with these options; skipping", out)
        return None
    marker.clear()
    # torch and the model code only now: a trained encoder is skipped in a second
    import torch

    from rellm.training.emotion_encoder_training import config_from_options, train_emotion_encoder

    if int(hp["num_threads"]) > 0:  # 0: as the environment says (the job runner's --num_threads)
        torch.set_num_threads(int(hp["num_threads"]))
    atomic_write_text(out / "hyperparams.yaml", resolved_yaml(config_path, overrides))
    summary = train_emotion_encoder(
        train_entries, valid_entries, out,
        model_config=config_from_options(*(hp[k] for k in model_keys)),
        epochs=int(hp["epochs"]), batch_size=int(hp["batch_size"]), lr=float(hp["lr"]),
        weight_decay=float(hp["weight_decay"]), category_weight=float(hp["category_weight"]),
        max_seconds=float(hp["max_seconds"]), seed=int(hp["seed"]), max_minutes=hp["max_minutes"],
        train_feature_encoder=bool(hp["train_feature_encoder"]),
    )
    marker.mark_done(options, inputs=inputs, best_epoch=summary["best_epoch"], valid=summary["valid"])
    return summary

