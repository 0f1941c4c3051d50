"""``DynamicItemDataset`` items for alignment training (stage 4): cached features, token segments, labels.

Each ``*_pipeline(...)`` returns a ``@takes/@provides`` function bound to its resources
(feature cache, chat layout, prompts). ``build_alignment_dataset`` joins the stage 1
manifest, the stage 2 feature cache and a stage 3 response file into one dataset and
reports every utterance it leaves out, by reason.
"""

import logging
from collections import Counter

import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from rellm.data.emotions import EMOTION_TO_ID

logger = logging.getLogger(__name__)

AVD_KEYS = ("arousal", "valence", "dominance")


def cached_features_pipeline(cache, with_emotion=True):
    """``id`` -> trimmed Whisper states ``[T, D]`` (fp16), their length, emotion embedding and encoder A/V/D."""
    if with_emotion:

        @takes("id")
        @provides("whisper", "whisper_len", "emo_emb", "encoder_avd")
        def features(utt_id):
            states = cache.whisper(utt_id)
            yield states
            yield states.shape[0]
            emb, avd = cache.emotion(utt_id)
            yield emb.float()
            yield avd.float()
    else:

        @takes("id")
        @provides("whisper", "whisper_len")
        def features(utt_id):
            states = cache.whisper(utt_id)
            yield states
            yield states.shape[0]

    return features


def student_segments_pipeline(layout, system_prompt, instruction):
    """``response``/``early_stop`` -> the speech-branch token segments.

    ``prompt_ids`` = system turn + user header + instruction (before the speech);
    ``tail_ids`` = end of user turn + assistant header + response (+ end tokens unless
    ``early_stop``); ``label_start`` = number of unlabelled tail tokens.
    """
    prompt = torch.tensor(layout.prompt_ids(system_prompt, instruction), dtype=torch.long)

    @takes("response", "early_stop")
    @provides("prompt_ids", "prompt_len", "tail_ids", "tail_len", "label_start")
    def segments(response, early_stop):
        tail, label_start = layout.response_ids(response, early_stop=bool(early_stop))
        yield prompt
        yield len(prompt)
        yield torch.tensor(tail, dtype=torch.long)
        yield len(tail)
        yield label_start

    return segments


def teacher_segments_pipeline(layout, system_prompt):
    """``teacher_instruction``/``transcript`` -> the text branch's prompt (the tail is the student's)."""

    @takes("teacher_instruction", "transcript")
    @provides("teacher_prompt_ids", "teacher_prompt_len")
    def segments(teacher_instruction, transcript):
        ids = layout.prompt_ids(system_prompt, teacher_instruction) + layout.encode_content(transcript)
        yield torch.tensor(ids, dtype=torch.long)
        yield len(ids)

    return segments


def labels_pipeline(avd_source="auto"):
    """Emotion id (``rellm.data.emotions``) and the A/V/D target in [arousal, valence, dominance] order.

    ``avd_source``: ``manifest`` (annotations, 0..1), ``encoder`` (the frozen emotion encoder's
    predictions, i.e. pseudo-labels) or ``auto`` (annotations when the manifest has them).
    """
    if avd_source not in ("auto", "manifest", "encoder"):
        raise ValueError(f"avd_source must be auto, manifest or encoder, got {avd_source!r}")

    @takes("emotion", "avd", "encoder_avd")
    @provides("emotion_id", "avd_target")
    def labels(emotion, avd, encoder_avd):
        yield EMOTION_TO_ID.get(emotion, -100)
        if avd_source == "encoder" or (avd_source == "auto" and avd is None):
            yield encoder_avd
        else:
            yield torch.tensor(avd, dtype=torch.float)

    return labels


def build_alignment_dataset(
    manifest,
    responses,
    cache,
    layout,
    *,
    system_prompt,
    instruction,
    teacher_system_prompt=None,
    with_emotion=True,
    need_emotion_label=False,
    avd_source="auto",
    min_duration=0.0,
    max_duration=float("inf"),
    max_text_tokens=None,
):
    """Join manifest + features + responses into a ``DynamicItemDataset``.

    Arguments
    ---------
    manifest : dict  ``{utt_id: {duration, transcript, emotion, arousal, valence, dominance, ...}}`` (stage 1).
    responses : list of stage 3 records ``{utt_id, emotion, transcript, instruction, output, early_stop}``.
    cache : a ``FeatureCache`` (stage 2).
    layout : ``rellm.models.chat_layout.ChatLayout``.
    system_prompt, instruction : the speech branch's system prompt and (label-free) instruction.
    teacher_system_prompt : when set, the text branch (teacher) items are added: system prompt
        + the record's ``instruction`` + transcript, same tail.
    need_emotion_label : drop utterances whose emotion is not one of the 5 classes.
    avd_source : see ``labels_pipeline``; ``manifest`` drops utterances without annotations.
    max_text_tokens : drop utterances whose text branch (prompt + transcript + tail) is longer (256 in BLSP-Emo).

    Returns ``(dataset, report)``; the report counts kept and dropped utterances by reason,
    with up to 5 example ids per reason.
    """
    skipped, examples = Counter(), {}

    def skip(reason, utt_id):
        skipped[reason] += 1
        examples.setdefault(reason, [])
        if len(examples[reason]) < 5:
            examples[reason].append(utt_id)

    by_id = {}
    for rec in responses:
        by_id[rec["utt_id"]] = rec
    feature_ids = set(cache.keys())
    data = {}
    for utt_id in sorted(manifest):
        entry = manifest[utt_id]
        rec = by_id.get(utt_id)
        if rec is None:
            skip("no_response", utt_id)
            continue
        if utt_id not in feature_ids:
            skip("no_features", utt_id)
            continue
        duration = float(entry.get("duration") or 0.0)
        if not min_duration <= duration <= max_duration:
            skip("duration_out_of_range", utt_id)
            continue
        emotion = entry.get("emotion") or rec.get("emotion")
        if need_emotion_label and emotion not in EMOTION_TO_ID:
            skip("no_emotion_label", utt_id)
            continue
        avd = [entry.get(k) for k in AVD_KEYS]
        avd = None if any(v is None for v in avd) else [float(v) for v in avd]
        if with_emotion and avd_source == "manifest" and avd is None:
            skip("no_avd_annotation", utt_id)
            continue
        transcript = rec.get("transcript") or entry.get("transcript") or ""
        if max_text_tokens:
            n = (
                len(layout.prompt_ids(teacher_system_prompt or system_prompt, rec.get("instruction", "")))
                + len(layout.encode_content(transcript))
                + len(layout.response_ids(rec["output"], rec.get("early_stop"))[0])
            )
            if n > max_text_tokens:
                skip("text_too_long", utt_id)
                continue
        data[utt_id] = {
            "duration": duration,
            "transcript": transcript,
            "emotion": emotion,
            "avd": avd,
            "response": rec["output"],
            "early_stop": bool(rec.get("early_stop", False)),
            "teacher_instruction": rec.get("instruction", ""),
        }
    for utt_id in sorted(set(by_id) - set(manifest)):
        skip("response_not_in_manifest", utt_id)
    report = {"kept": len(data), "skipped": dict(skipped), "examples": examples}
    if not data:
        raise ValueError(f"no utterance left for training after joining manifest, features and responses: {report}")
    if skipped:
        logger.warning("left out %d utterance(s): %s (examples: %s)", sum(skipped.values()), dict(skipped), examples)

    items = [
        cached_features_pipeline(cache, with_emotion),
        student_segments_pipeline(layout, system_prompt, instruction),
    ]
    keys = [
        "id",
        "duration",
        "whisper",
        "whisper_len",
        "prompt_ids",
        "prompt_len",
        "tail_ids",
        "tail_len",
        "label_start",
    ]
    if with_emotion:
        items.append(labels_pipeline(avd_source))
        keys += ["emo_emb", "emotion_id", "avd_target"]
    else:

        @takes("emotion")
        @provides("emotion_id")
        def emotion_only(emotion):
            return EMOTION_TO_ID.get(emotion, -100)

        items.append(emotion_only)
        keys.append("emotion_id")
    if teacher_system_prompt is not None:
        items.append(teacher_segments_pipeline(layout, teacher_system_prompt))
        keys += ["teacher_prompt_ids", "teacher_prompt_len"]
    dataset = DynamicItemDataset(data, dynamic_items=items, output_keys=keys)
    return dataset, report
