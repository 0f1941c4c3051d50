"""Stage 2 as the recipe runs it (``rellm.bin.extract``): the options checked, the options and inputs a shard and
the merge are fingerprinted with, the encoders built on first need, and the shard / merge calls of
``rellm.features.extraction``."""
from pathlib import Path

from rellm.data.manifest import read_data_root, read_manifest
from rellm.features.cache import FORMAT_VERSION
from rellm.features.extraction import extract_shard, extraction_inputs, merge_shards, resolve_emotion_encoder
from rellm.features.extraction import stage as extraction_stage
from rellm.utils.config import ConfigError
from rellm.utils.torch_device import DTYPES, pick_device, pick_dtype


def check_options(hp):
    if not hp["manifest"] or not Path(hp["manifest"]).is_file():
        raise FileNotFoundError(f"--manifest {hp['manifest']!r} is not a file; run stage 1 first "
                                "(it writes data/<split>/<set>.json)")
    if not hp["output_dir"]:
        raise ConfigError("--output_dir is required (dump/<split>/<set>)")
    if not 0 < float(hp["whisper_window_seconds"]) <= 30.0:
        raise ConfigError(f"--whisper_window_seconds must be in (0, 30], got {hp['whisper_window_seconds']}")
    for key in ("whisper_dtype", "emotion_dtype"):
        if hp[key] not in DTYPES:
            raise ConfigError(f"--{key} must be one of {', '.join(DTYPES)}, got {hp[key]!r}")
    if not 1 <= int(hp["shard"]) <= int(hp["num_shards"]):
        raise ConfigError(f"--shard must be in 1..{hp['num_shards']}, got {hp['shard']}")


def run_stage(hp):
    """Stage 2 for the config ``hp``: one shard (``shard``) or the merge (``merge``)."""
    check_options(hp)
    # one process per shard (and per merge) at a time, taken before anything is written
    with extraction_stage(hp["output_dir"], int(hp["num_shards"])).running(hp, log=False):
        return _run(hp)


def _run(hp):
    manifest = Path(hp["manifest"])
    data_root = hp["data_root"] or read_data_root(manifest.parent)
    entries = read_manifest(manifest, data_root)
    emotion_folder = resolve_emotion_encoder(hp["emotion_encoder"], hp["emotion_encoder_dir"])
    # what makes the features: a change here must not silently mix old and new shards
    options = {"format_version": FORMAT_VERSION, "whisper": str(hp["whisper"]), "whisper_dtype": hp["whisper_dtype"],
               "emotion_encoder": str(Path(emotion_folder).resolve()), "emotion_dtype": hp["emotion_dtype"],
               "emotion_max_seconds": float(hp["emotion_max_seconds"]), "data_root": str(data_root)}
    inputs = extraction_inputs(manifest, data_root, hp["whisper"], emotion_folder)
    window = float(hp["whisper_window_seconds"])
    if window < 30.0:  # recorded only when shortened: caches made with the full window keep their fingerprint
        options["whisper_window_seconds"] = window
    if hp["merge"]:
        return merge_shards(entries, hp["output_dir"], int(hp["num_shards"]), options,
                            meta={**options, "manifest": str(manifest)}, overwrite=bool(hp["overwrite"]), inputs=inputs)
    # The encoders (torch, transformers) are imported only when a shard has work: a finished shard exits in
    # a second, so re-running a finished recipe costs little.
    def make_whisper():
        import torch

        from rellm.features.whisper_states import WhisperStateExtractor

        torch.set_num_threads(int(hp["num_threads"]))
        device = pick_device(hp["device"])
        return WhisperStateExtractor.from_pretrained(hp["whisper"], device=device,
                                                     dtype=pick_dtype(hp["whisper_dtype"], device),
                                                     window_seconds=window if window < 30.0 else None)

    def make_emotion():
        from rellm.features.emotion import EmotionEmbedder

        device = pick_device(hp["device"])
        return EmotionEmbedder.from_folder(emotion_folder, device=device, max_seconds=float(hp["emotion_max_seconds"]),
                                           dtype=pick_dtype(hp["emotion_dtype"], device))

    return extract_shard(entries, hp["output_dir"], int(hp["shard"]), int(hp["num_shards"]), options,
                         make_whisper=make_whisper, make_emotion=make_emotion, batch_size=int(hp["batch_size"]),
                         overwrite=bool(hp["overwrite"]), inputs=inputs)

