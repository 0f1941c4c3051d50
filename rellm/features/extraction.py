"""Stage 2 logic: one shard of a manifest through the frozen encoders, and the merge.

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

from rellm.data.emotions import AVD
from rellm.features.audio import SAMPLE_RATE, AudioError, load_audio
from rellm.features.cache import FORMAT_VERSION, INDEX_NAME, ShardWriter
from rellm.utils.io import atomic_write_json, read_json
from rellm.utils.sharding import merge_jsonl_shards, shard_keys, shard_path
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5


class ExtractionReport:
    """Counts by reason with the first few utterance ids, JSON-ready."""

    def __init__(self):
        self.counts = Counter()
        self.examples = {}

    def count(self, reason, utt_id=None, n=1):
        self.counts[reason] += n
        if utt_id is not None:
            ex = self.examples.setdefault(reason, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append(utt_id)

    def as_dict(self, **extra):
        return {**extra, "counts": dict(sorted(self.counts.items())), "examples": self.examples}


def avd_annotation(entry, predicted, report, utt_id):
    """The manifest's A/V/D annotation (all three values) or None, counted in ``report``; the prediction is
    stored beside it whatever (stage 4 chooses the training target, ``avd_source``)."""
    annotated = [entry.get(k) for k in AVD]
    if np.any((predicted < 0) | (predicted > 1)):
        report.count("avd_prediction_outside_unit_range", utt_id)
    if all(v is not None for v in annotated):
        report.count("avd_annotation.present")
        return [float(v) for v in annotated]
    if any(v is not None for v in annotated):
        report.count("avd_annotation.partial_treated_as_absent", utt_id)
    else:
        report.count("avd_annotation.absent")
    return None


def utterances_fingerprint(entries, keys):
    """Changes when a shard's utterances, their audio paths or their annotations change."""
    h = hashlib.sha256()
    for k in keys:
        e = entries[k]
        h.update(json.dumps([k, e.get("wav"), [e.get(a) for a in AVD]]).encode("utf-8"))
    return h.hexdigest()[:16]


def shard_marker(output_dir, shard, num_shards):
    return DoneMarker(Path(output_dir) / "shards", f"extract.{shard}of{num_shards}",
                      hint="re-run with ./run.sh --overwrite true (python -m rellm.bin.extract: --overwrite=true), or delete the dump folder")


def batches_by_length(keys, entries, batch_size):
    """Length-sorted batches (shortest first) so the emotion encoder pads little."""
    order = sorted(keys, key=lambda k: (float(entries[k].get("duration") or 0.0), k))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def extract_shard(entries, output_dir, shard, num_shards, options, make_whisper, make_emotion, batch_size=8,
                  overwrite=False):
    """Extract shard ``shard`` of ``num_shards`` of ``entries`` (a manifest with ``{data_root}`` resolved).

    ``make_whisper()`` / ``make_emotion()`` build the encoders (only when the shard has work):
    a :class:`~rellm.features.whisper_states.WhisperStateExtractor` and an
    :class:`~rellm.features.emotion.EmotionEmbedder`. Returns the shard report, or None if it was done.
    """
    from tqdm import tqdm

    keys = shard_keys(entries, shard, num_shards)
    marker = shard_marker(output_dir, shard, num_shards)
    shard_options = {**options, "utterances": utterances_fingerprint(entries, keys), "count": len(keys)}
    if marker.is_done(shard_options, overwrite=overwrite):
        logger.info("shard %d/%d of %s is done; skipping", shard, num_shards, output_dir)
        return None
    marker.clear()
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
                    report.count(f"skipped.{err.reason}", k)
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
                    report.count("whisper_truncated_to_30s", k)
                if emotion.max_samples and len(waves[i]) > emotion.max_samples:
                    report.count("emotion_encoder_input_truncated", k)
                annotation = avd_annotation(entries[k], predictions[i], report, k)
                writer.add(k, states[i], embeddings[i], annotation, predictions[i],
                           duration=len(waves[i]) / SAMPLE_RATE, whisper_truncated=truncated)
                report.count("cached")
                report.count("whisper_frames", n=int(states[i].shape[0]))
    summary = report.as_dict(shard=shard, num_shards=num_shards, utterances=len(keys))
    atomic_write_json(shard_path(output_dir, "report", shard, num_shards, suffix=".json"), summary)
    marker.mark_done(shard_options, cached=report.counts["cached"])
    logger.info("shard %d/%d: %d of %d utterances cached; %s", shard, num_shards, report.counts["cached"],
                len(keys), {k: v for k, v in report.counts.items() if k.startswith("skipped.")} or "none skipped")
    return summary


def merge_shards(entries, output_dir, num_shards, options, meta, overwrite=False):
    """Check all shards are done with ``options``, write ``index.jsonl``, ``features.json``, ``report.json``."""
    output_dir = Path(output_dir)
    merge_options = {**options, "num_shards": num_shards, "manifest": utterances_fingerprint(entries, sorted(entries))}
    marker = DoneMarker(output_dir, "extract_merge", hint="re-run stage 2 with --overwrite=true")
    if marker.is_done(merge_options, overwrite=overwrite):
        logger.info("features in %s are merged already; skipping", output_dir)
        return read_json(output_dir / "report.json")
    unfinished = []
    for j in range(1, num_shards + 1):
        keys = shard_keys(entries, j, num_shards)
        shard_options = {**options, "utterances": utterances_fingerprint(entries, keys), "count": len(keys)}
        if not shard_marker(output_dir, j, num_shards).is_done(shard_options):
            unfinished.append(j)
    if unfinished:
        raise FileNotFoundError(
            f"{len(unfinished)} of {num_shards} extraction shards in {output_dir} are not finished "
            f"(jobs {unfinished[:10]}); run them (--shard J --num_shards {num_shards}) before --merge true"
        )
    marker.clear()
    _, n_cached = merge_jsonl_shards(output_dir, INDEX_NAME, num_shards)
    totals, examples = Counter(), {}
    for j in range(1, num_shards + 1):
        part = read_json(shard_path(output_dir, "report", j, num_shards, suffix=".json"))
        totals.update(part["counts"])
        for reason, ids in part["examples"].items():
            examples[reason] = (examples.get(reason, []) + ids)[:MAX_EXAMPLES]
    skipped = {k.split(".", 1)[1]: v for k, v in totals.items() if k.startswith("skipped.")}
    report = {
        "manifest_utterances": len(entries), "cached": n_cached, "skipped": skipped,
        "avd_annotation": {k.split(".", 1)[1]: v for k, v in totals.items() if k.startswith("avd_annotation.")},
        "counts": {k: v for k, v in sorted(totals.items()) if not k.startswith(("skipped.", "avd_annotation."))},
        "examples": examples, "num_shards": num_shards,
    }
    if n_cached + sum(skipped.values()) != len(entries):
        raise RuntimeError(f"stage 2 bookkeeping error in {output_dir}: {n_cached} cached + {skipped} skipped "
                           f"!= {len(entries)} manifest utterances")
    atomic_write_json(output_dir / "report.json", report)
    dims = {}
    if n_cached:
        from rellm.features.cache import FeatureCache

        cache = FeatureCache(output_dir, check_version=False)  # features.json is written next
        dims = {"whisper_dim": cache.whisper_dim, "emotion_dim": cache.emotion_dim}
    atomic_write_json(output_dir / "features.json", {"format_version": FORMAT_VERSION, **meta, **dims})
    marker.mark_done(merge_options)
    level = logging.WARNING if skipped else logging.INFO
    logger.log(level, "merged %d shards into %s: %d of %d utterances cached, skipped %s, A/V/D annotations %s",
               num_shards, output_dir / f"{INDEX_NAME}.jsonl", n_cached, len(entries), skipped or "none",
               report["avd_annotation"])
    return report
