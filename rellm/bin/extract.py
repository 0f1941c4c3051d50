"""Stage 2: frozen Whisper encoder states + emotion-encoder embeddings and A/V/D, per utterance.

    python -m rellm.bin.extract conf/extract.yaml --manifest data/<split>/<set>.json \\
        --output_dir dump/<split>/<set> --emotion_encoder_dir exp/emotion_encoder/<split> \\
        --shard J --num_shards N                      # one job of the JOB=1:N array
    python -m rellm.bin.extract conf/extract.yaml ... --merge true --num_shards N

Writes the feature cache read by ``rellm.features.cache.FeatureCache(output_dir)``
(layout in that module), ``report.json`` (cached and skipped utterances by reason:
``rellm.utils.drop_report``; A/V/D annotation counts) and ``features.json``. Finished shards are
skipped on re-runs; changed options stop with a message (``--overwrite=true``): the shard/marker/merge
skeleton is ``rellm.utils.sharded_stage``, the work ``rellm.features.extraction``.
"""
from pathlib import Path

from rellm.data.manifest import read_data_root, read_manifest
from rellm.features.cache import FORMAT_VERSION
from rellm.features.extraction import extract_shard, extraction_inputs, merge_shards, resolve_emotion_encoder
from rellm.features.extraction import stage as extraction_stage
from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.logging import setup_logging
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


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    hp = load_config(config_path, overrides)
    check_options(hp)
    # one process per shard (and per merge) at a time, taken before anything is written
    with extraction_stage(hp["output_dir"], int(hp["num_shards"])).locked(None if hp["merge"] else int(hp["shard"])):
        return _run(hp)


def _run(hp):
    setup_logging()
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


if __name__ == "__main__":
    run_main(main)
