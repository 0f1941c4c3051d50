"""Stage 2 logic: one shard of a manifest through the frozen encoders, and the merge (``ShardedStage``).

A shard (``shard_keys``: the same slice of sorted ids whatever the runner)
loads its utterances' audio, runs the frozen Whisper encoder and the frozen
emotion encoder on length-sorted batches, and writes its part of the cache
(:class:`rellm.features.cache.ShardWriter`) plus a report, then a done marker
holding the options and a fingerprint of its utterances. Re-running skips
finished shards; a shard interrupted before its marker is redone whole. The
merge checks every shard is done with the same options, writes the sorted
``index.jsonl``, ``features.json`` and the summed ``report.json``.
"""
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from rellm.data.audio import SAMPLE_RATE, AudioError, load_audio
from rellm.data.emotions import AVD
from rellm.features.cache import FORMAT_VERSION, INDEX_NAME, ShardWriter
from rellm.utils.drop_report import DropReport, ReasonCounts
from rellm.utils.io import atomic_write_json, read_json
from rellm.utils.sharded_stage import ShardedStage

logger = logging.getLogger(__name__)

FROM_RECIPE = "from_recipe"  # extract.yaml's emotion_encoder: the encoder stage 2a trained

HINT = "re-run with ./run.sh --overwrite true (python -m rellm.bin.extract: --overwrite=true), or delete the dump folder"


class ExtractionReport(DropReport):
    """Cached (kept) and skipped (dropped) utterances by reason, plus ``notes`` (kept with a caveat: truncated
    input, a prediction outside [0, 1], a partial A/V/D annotation), A/V/D annotations by kind and the Whisper
    frame count (``rellm.utils.drop_report``)."""

    def __init__(self):
        super().__init__()
        self.notes = ReasonCounts()
        self.avd_annotation = Counter()
        self.whisper_frames = 0

    def as_dict(self, **extra):
        return {**extra, **super().as_dict(), "notes": self.notes.as_dict(),
                "avd_annotation": dict(sorted(self.avd_annotation.items())), "whisper_frames": self.whisper_frames}

    def update(self, part):
        super().update(part)
        self.notes.update(part["notes"])
        self.avd_annotation.update(part["avd_annotation"])
        self.whisper_frames += part["whisper_frames"]


def avd_annotation(entry, predicted, report, utt_id):
    """The manifest's A/V/D annotation (all three values) or None, counted in ``report``; the prediction is
    stored beside it whatever (stage 4 chooses the training target, ``avd_source``)."""
    annotated = [entry.get(k) for k in AVD]
    if np.any((predicted < 0) | (predicted > 1)):
        report.notes.add("avd_prediction_outside_unit_range", utt_id)
    if all(v is not None for v in annotated):
        report.avd_annotation["present"] += 1
        return [float(v) for v in annotated]
    if any(v is not None for v in annotated):
        report.avd_annotation["partial_treated_as_absent"] += 1
        report.notes.add("avd_annotation_partial_treated_as_absent", utt_id)
    else:
        report.avd_annotation["absent"] += 1
    return None


def resolve_emotion_encoder(emotion_encoder, emotion_encoder_dir=None):
    """The folder to load: the config's ``emotion_encoder`` (a local folder or, on a machine with hub
    access, a hub name), or ``emotion_encoder_dir`` when the config says ``from_recipe`` / is empty
    (the mini recipe's self-trained encoder, stage 2a)."""
    value = str(emotion_encoder or "").strip()
    if value in ("", FROM_RECIPE):
        if not emotion_encoder_dir:
            raise FileNotFoundError(
                "emotion_encoder is 'from_recipe' but no --emotion_encoder_dir was given; run.sh passes "
                "exp/emotion_encoder/<split>, trained by stage 2a (train_emotion_encoder=true)"
            )
        folder = Path(emotion_encoder_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no trained emotion encoder in {folder}: run stage 2a first (./run.sh --stage 2 with "
                "train_emotion_encoder=true), or set emotion_encoder in conf/extract.yaml to a model folder"
            )
        return folder
    folder = Path(value).expanduser()
    if folder.is_dir():
        return folder
    if value.startswith(("/", ".", "~")) or value.count("/") != 1:
        raise FileNotFoundError(
            f"emotion_encoder {value!r} is not a folder. Download "
            "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim (config.json + weights) and point "
            "emotion_encoder at it"
        )
    # "org/name": only where the user's machine can reach the hub; nothing is hard-coded here
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(value, allow_patterns=["config.json", "*.safetensors", "pytorch_model.bin"]))
    except Exception as err:  # offline, unknown repo, no access
        raise FileNotFoundError(
            f"cannot fetch emotion encoder {value!r} from the hub ({type(err).__name__}: {err}); download it "
            "yourself and set emotion_encoder to the local folder"
        ) from err



def utterances_fingerprint(entries, keys):
    """Changes when a shard's utterances, their audio paths or their annotations change."""
    h = hashlib.sha256()
    for k in keys:
        e = entries[k]
        h.update(json.dumps([k, e.get("wav"), [e.get(a) for a in AVD]]).encode("utf-8"))
    return h.hexdigest()[:16]


def stage(output_dir, num_shards):
    return ShardedStage("extract", output_dir, num_shards, hint=HINT, merge_hint="re-run stage 2 with --overwrite=true",
                        stage="2")


def extraction_inputs(manifest, data_root, whisper, emotion_folder):
    """What stage 2 reads (``rellm.utils.lineage``): the manifest's content, its audio files (sizes and times),
    the Whisper model and the emotion encoder (stage 2a's marker when the recipe trained it, else its files)."""
    from rellm.pretrained.identity import add_model
    from rellm.utils.lineage import Inputs

    inputs = Inputs().file("manifest", manifest).audio("audio", manifest, data_root)
    return add_model(add_model(inputs, "whisper", whisper), "emotion_encoder", emotion_folder)


def shard_options(entries, options, keys):
    return {**options, "utterances": utterances_fingerprint(entries, keys), "count": len(keys)}


def batches_by_length(keys, entries, batch_size):
    """Length-sorted batches (shortest first) so the emotion encoder pads little."""
    order = sorted(keys, key=lambda k: (float(entries[k].get("duration") or 0.0), k))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def extract_shard(entries, output_dir, shard, num_shards, options, make_whisper, make_emotion, batch_size=8,
                  overwrite=False, inputs=None):
    """Extract shard ``shard`` of ``num_shards`` of ``entries`` (a manifest with ``{data_root}`` resolved).

    ``make_whisper()`` / ``make_emotion()`` build the encoders (only when the shard has work):
    a :class:`~rellm.features.whisper_states.WhisperStateExtractor` and an
    :class:`~rellm.features.emotion.EmotionEmbedder`. Returns the shard report, or None if it was done.
    """
    skeleton = stage(output_dir, num_shards)
    keys = skeleton.keys(entries, shard)
    summary = {}

    def work():
        report = encode_utterances(entries, keys, output_dir, shard, num_shards, make_whisper, make_emotion,
                                   batch_size)
        summary.update(report.as_dict(shard=shard, num_shards=num_shards, utterances=len(keys)))
        atomic_write_json(skeleton.shard_path("report", shard, suffix=".json"), summary)
        logger.info("shard %d/%d: %d of %d utterances cached; skipped %s", shard, num_shards, report.kept,
                    len(keys), report.dropped.counts() or "none")
        return {"cached": report.kept}

    ran = skeleton.run_shard(shard, shard_options(entries, options, keys), work, overwrite=overwrite, inputs=inputs)
    return summary if ran else None


def encode_utterances(entries, keys, output_dir, shard, num_shards, make_whisper, make_emotion, batch_size):
    """Shard ``shard``'s part of the cache (``ShardWriter``); returns its :class:`ExtractionReport`."""
    from tqdm import tqdm

    report = ExtractionReport()
    whisper, emotion = (make_whisper(), make_emotion()) if keys else (None, None)
    with ShardWriter(output_dir, shard, num_shards) as writer:
        for batch in tqdm(batches_by_length(keys, entries, batch_size), desc=f"extract shard {shard}/{num_shards}",
                          unit="batch"):
            audio = {}
            for k in batch:
                try:
                    audio[k] = load_audio(entries[k]["wav"], SAMPLE_RATE)
                except AudioError as err:
                    report.drop(err.reason, k)
                    logger.warning("skipping %s: %s", k, err)
            ids = [k for k in batch if k in audio]
            if not ids:
                continue
            waves = [audio[k] for k in ids]
            states = whisper(waves)
            embeddings, predictions = emotion(waves)
            for i, k in enumerate(ids):
                truncated = len(waves[i]) > whisper.max_samples
                if truncated:
                    report.notes.add("whisper_truncated_to_window", k)
                if emotion.max_samples and len(waves[i]) > emotion.max_samples:
                    report.notes.add("emotion_encoder_input_truncated", k)
                annotation = avd_annotation(entries[k], predictions[i], report, k)
                writer.add(k, states[i], embeddings[i], annotation, predictions[i],
                           duration=len(waves[i]) / SAMPLE_RATE, whisper_truncated=truncated)
                report.keep()
                report.whisper_frames += int(states[i].shape[0])
    return report


def merge_shards(entries, output_dir, num_shards, options, meta, overwrite=False, inputs=None):
    """Check all shards are done with ``options``, write ``index.jsonl``, ``features.json``, ``report.json``."""
    output_dir = Path(output_dir)
    skeleton = stage(output_dir, num_shards)
    merge_options = {**options, "num_shards": num_shards, "manifest": utterances_fingerprint(entries, sorted(entries))}

    def work():
        _, n_cached = skeleton.merge_jsonl(INDEX_NAME)
        totals = ExtractionReport()
        for j in range(1, num_shards + 1):
            totals.update(read_json(skeleton.shard_path("report", j, suffix=".json")))
        if n_cached != totals.kept or n_cached + totals.total_dropped != len(entries):
            raise RuntimeError(f"stage 2 bookkeeping error in {output_dir}: {n_cached} cached + "
                               f"{totals.dropped.counts()} skipped != {len(entries)} manifest utterances")
        dims = {}
        if n_cached:
            from rellm.features.cache import FeatureCache

            cache = FeatureCache(output_dir, check_version=False)  # features.json is written next
            dims = {"whisper_dim": cache.whisper_dim, "emotion_dim": cache.emotion_dim}
        atomic_write_json(output_dir / "features.json", {"format_version": FORMAT_VERSION, **meta, **dims})
        totals.log(logger, f"merged {num_shards} shards into {output_dir / f'{INDEX_NAME}.jsonl'}: of "
                           f"{len(entries)} manifest utterances, cached (kept)")
        logger.info("A/V/D annotations %s", dict(totals.avd_annotation))
        return totals.as_dict(manifest_utterances=len(entries), num_shards=num_shards)

    return skeleton.merge(merge_options, lambda j: shard_options(entries, options, skeleton.keys(entries, j)), work,
                          overwrite=overwrite, inputs=inputs)
