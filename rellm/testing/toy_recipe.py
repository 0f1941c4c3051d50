"""Stage 1-3 outputs with random features and hand-written text, for tests and smoke runs of stages 4 and 5.

The features are a real stage 2 feature cache (``rellm.features.cache``: written by its ``ShardWriter``,
read by ``FeatureCache``), so the code under test reads them exactly as it reads extracted ones.
"""
from pathlib import Path

import torch

from rellm.features.cache import FORMAT_VERSION, INDEX_NAME, FeatureCache, ShardWriter
from rellm.testing.toy_models import TOY_SENTENCES
from rellm.utils.io import atomic_write_json, write_jsonl
from rellm.utils.sharding import merge_jsonl_shards

TOY_EMOTIONS = ["angry", "happy", "neutral", "sad", "surprise"]
WHISPER_FRAMES_PER_SECOND = 50


def write_feature_cache(folder, features):
    """Write ``{utt_id: {"whisper" [T, D], "emotion_embedding" [E], "avd_annotation" [3] | None,
    "avd_prediction" [3]}}`` as the stage 2 feature cache ``folder`` (one shard, merged)."""
    folder = Path(folder)
    with ShardWriter(folder, 1, 1) as writer:
        for utt_id in sorted(features):
            item = features[utt_id]
            writer.add(utt_id, item["whisper"], item["emotion_embedding"], item["avd_annotation"],
                       item["avd_prediction"], duration=item["whisper"].shape[0] / WHISPER_FRAMES_PER_SECOND)
    merge_jsonl_shards(folder, INDEX_NAME, 1)
    atomic_write_json(folder / "features.json", {
        "format_version": FORMAT_VERSION, "whisper_dim": int(next(iter(features.values()))["whisper"].shape[-1]),
        "emotion_dim": int(next(iter(features.values()))["emotion_embedding"].shape[-1])})
    return folder


def read_feature_cache(folder):
    """The features of the cache ``folder`` as ``write_feature_cache`` takes them (tests alter and rewrite them)."""
    cache = FeatureCache(folder)
    return {utt_id: {"whisper": cache.whisper(utt_id), "emotion_embedding": cache.emotion_embedding(utt_id),
                     "avd_annotation": cache.avd_annotation(utt_id), "avd_prediction": cache.avd_prediction(utt_id)}
            for utt_id in cache.keys()}  # noqa: SIM118 (FeatureCache is not iterable)


def write_toy_recipe_data(root, num_utts=8, speech_dim=24, emotion_dim=8, sets=("train", "valid"), seed=0,
                          min_duration=1.0):
    """Stage 1-3 outputs for ``num_utts`` utterances per set under ``root`` (random features), lasting
    ``min_duration`` to ``min_duration + 0.75`` s.

    Layout: ``data/<set>.json``, ``dump/<set>/`` (a stage 2 feature cache) and
    ``responses/<set>/{expected,continuation}.jsonl``.
    """
    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    for set_name in sets:
        manifest, feats, expected, continuation = {}, {}, [], []
        for i in range(num_utts):
            utt = f"{set_name}_utt{i:03d}"
            emotion = TOY_EMOTIONS[i % len(TOY_EMOTIONS)]
            transcript = TOY_SENTENCES[i % 5]
            duration = min_duration + 0.25 * (i % 4)
            frames = int(duration * WHISPER_FRAMES_PER_SECOND)
            avd = torch.rand(3, generator=g)
            manifest[utt] = {
                "wav": f"{{data_root}}/{utt}.wav", "duration": duration, "transcript": transcript,
                "emotion": emotion, "arousal": float(avd[0]), "valence": float(avd[1]),
                "dominance": float(avd[2]), "speaker": "spk1", "gender": "F",
            }
            feats[utt] = {
                "whisper": torch.randn(frames, speech_dim, generator=g).half(),
                "emotion_embedding": torch.randn(emotion_dim, generator=g),
                "avd_annotation": avd,
                "avd_prediction": torch.rand(3, generator=g),
            }
            expected.append({
                "utt_id": utt, "emotion": emotion, "transcript": transcript,
                "instruction": f"Continue the following sentence that reflects a '{emotion}' emotion tone in a "
                               "coherent style: ",
                "output": TOY_SENTENCES[8 + i % 3], "early_stop": i % 4 == 3,
            })
            continuation.append({
                "utt_id": utt, "emotion": emotion, "transcript": transcript,
                "instruction": "Continue the following text in a coherent style: ",
                "output": TOY_SENTENCES[(i + 1) % 5], "early_stop": False,
            })
        atomic_write_json(root / "data" / f"{set_name}.json", manifest)
        write_feature_cache(root / "dump" / set_name, feats)
        write_jsonl(root / "responses" / set_name / "expected.jsonl", expected)
        write_jsonl(root / "responses" / set_name / "continuation.jsonl", continuation)
    return root
