"""``DynamicItemDataset`` items for alignment training (stage 4): cached features, token segments, labels.

Each ``*_pipeline(...)`` returns a ``@takes/@provides`` function bound to its resources
(feature cache, chat layout, prompts). ``build_alignment_dataset`` joins the stage 1
manifest, the stage 2 feature cache and a stage 3 response file into one dataset and
reports every utterance it leaves out, by reason.
"""

import hashlib
import logging
from collections import Counter

import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from rellm.data.emotions import EMOTION_TO_ID
from rellm.utils.drop_report import DropReport
from rellm.utils.stage import UserError

logger = logging.getLogger(__name__)



def cached_features_pipeline(cache, with_emotion=True):
    """``feature_id`` (the utterance whose audio an item uses; an SER turn shares its utterance's) -> trimmed
    Whisper states ``[T, D]`` (fp16), their length and (``with_emotion``) the emotion embedding."""
    if with_emotion:

        @takes("feature_id")
        @provides("whisper", "whisper_len", "emotion_embedding")
        def features(utt_id):
            states = cache.whisper(utt_id)
            yield states
            yield states.shape[0]
            yield cache.emotion_embedding(utt_id).float()
    else:

        @takes("feature_id")
        @provides("whisper", "whisper_len")
        def features(utt_id):
            states = cache.whisper(utt_id)
            yield states
            yield states.shape[0]

    return features


TARGET_ENDS = ("template", "released")
KL_POSITIONS = ("predicting", "targets")


def end_of_document_id(layout):
    """The id of ``<|endoftext|>`` (Qwen's end-of-document token, ``tokenizer.eod_id`` in the released code), else
    the tokenizer's eos; an error when the tokenizer has neither."""
    tokenizer = layout.tokenizer
    eod = tokenizer.get_vocab().get("<|endoftext|>")
    if eod is None:
        eod = tokenizer.eos_token_id
    if eod is None:
        raise UserError("target_end: released needs an end-of-document token (<|endoftext|> or the tokenizer's eos); "
                        "this tokenizer has neither: use target_end: template")
    return int(eod)


def response_segment(layout, response, early_stop=False, target_end="template"):
    """``(tail ids, num_unlabelled)``: assistant header + response + the end of the target (all labelled but the
    header). ``target_end`` (docs/released_code.md#training): ``template`` ends it with the chat template's end
    marker (``<|im_end|>``); ``released`` as the released data processing does, with the marker, a newline and
    the end-of-document token (``<|im_end|>\\n<|endoftext|>``). A reply cut at the length limit (``early_stop``)
    gets no end either way."""
    if target_end not in TARGET_ENDS:
        raise UserError(f"target_end must be one of {', '.join(TARGET_ENDS)}, got {target_end!r}")
    tail, label_start = layout.response_ids(response, early_stop=bool(early_stop))
    if target_end == "released" and not early_stop:
        tail = list(tail) + layout.encode_content("\n") + [end_of_document_id(layout)]
    return tail, label_start


def student_segments_pipeline(layout, system_prompt, instruction, ser_prompt=None, target_end="template",
                              kl_positions="predicting"):
    """``response``/``early_stop``/``turn`` -> the speech-branch token segments.

    ``prompt_ids`` = system turn + user header + instruction (before the speech);
    ``tail_ids`` = end of user turn + assistant header + response (+ end tokens unless
    ``early_stop``, :func:`response_segment`); ``label_start`` = number of unlabelled tail tokens. ``turn`` is
    ``behaviour`` (``system_prompt`` + ``instruction``) or ``ser`` (``ser_prompt = (system prompt, instruction)``).

    ``kl_positions`` (only for a step whose response loss is the KL; docs/released_code.md#training): the model's
    logits are taken at the positions *predicting* the labelled tokens (``predicting``), or, as the released
    ``response_kl``, at the labelled tokens' own positions (``targets``): then the tail gets one filler token
    (never attended by the positions before it) and ``label_start`` moves one on, so the rows picked are the
    labelled tokens' positions, the last one included.
    """
    if kl_positions not in KL_POSITIONS:
        raise UserError(f"kl_positions must be one of {', '.join(KL_POSITIONS)}, got {kl_positions!r}")
    prompts = {"behaviour": torch.tensor(layout.prompt_ids(system_prompt, instruction), dtype=torch.long)}
    if ser_prompt is not None:
        prompts["ser"] = torch.tensor(layout.prompt_ids(*ser_prompt), dtype=torch.long)
    filler = layout.tokenizer.pad_token_id if layout.tokenizer.pad_token_id is not None else layout.end_ids[0]

    @takes("response", "early_stop", "turn")
    @provides("prompt_ids", "prompt_len", "tail_ids", "tail_len", "label_start")
    def segments(response, early_stop, turn):
        prompt = prompts[turn]
        tail, label_start = response_segment(layout, response, early_stop, target_end)
        if kl_positions == "targets":
            tail, label_start = list(tail) + [filler], label_start + 1
        yield prompt
        yield len(prompt)
        yield torch.tensor(tail, dtype=torch.long)
        yield len(tail)
        yield label_start

    return segments


def is_ser_turn_utterance(utt_id, fraction, seed=0):
    """Whether ``utt_id`` also gets an SER question/answer item: a fixed hash, so every run picks the same ones."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"ser:{seed}:{utt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


def teacher_segments_pipeline(layout, system_prompt):
    """``teacher_instruction``/``transcript`` -> the text branch's prompt (the tail is the student's)."""

    @takes("teacher_instruction", "transcript")
    @provides("teacher_prompt_ids", "teacher_prompt_len")
    def segments(teacher_instruction, transcript):
        ids = layout.prompt_ids(system_prompt, teacher_instruction) + layout.encode_content(transcript)
        yield torch.tensor(ids, dtype=torch.long)
        yield len(ids)

    return segments


AVD_SOURCES = ("annotation", "encoder", "auto")


def choose_avd_target(annotation, prediction, avd_source):
    """The A/V/D training target and where it came from: ``(list of 3 floats, "annotation" | "encoder")``,
    or ``(None, None)`` when ``avd_source="annotation"`` and the utterance has no annotation.

    ``annotation``: the corpus's annotation (0..1) only; ``encoder``: the frozen emotion encoder's
    prediction (the pseudo-label, clipped to [0, 1]) even where an annotation exists; ``auto``: the
    annotation when the utterance has one, else the encoder's prediction. The one place the target
    is chosen (docs/method.md#auxiliary-heads).
    """
    if avd_source not in AVD_SOURCES:
        hint = " (renamed: use annotation)" if avd_source == "manifest" else ""
        raise ValueError(f"avd_source must be one of {', '.join(AVD_SOURCES)}, got {avd_source!r}{hint}")
    if avd_source != "encoder" and annotation is not None:
        return [float(v) for v in annotation], "annotation"
    if avd_source == "annotation":
        return None, None
    return [min(max(float(v), 0.0), 1.0) for v in prediction], "encoder"


def labels_pipeline():
    """``emotion`` / ``avd`` (the target chosen by ``choose_avd_target``) -> ``emotion_id`` and ``avd_target``."""

    @takes("emotion", "avd")
    @provides("emotion_id", "avd_target")
    def labels(emotion, avd):
        yield EMOTION_TO_ID.get(emotion, -100)
        yield torch.tensor(avd if avd is not None else [float("nan")] * 3, dtype=torch.float)

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
    need_avd_target=False,
    avd_source="auto",
    min_duration=0.0,
    max_duration=float("inf"),
    max_text_tokens=None,
    ser_turns=None,
    target_end="template",
    kl_positions="predicting",
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
    with_emotion : the items carry the emotion embedding (the fusion adapter's input).
    need_emotion_label : drop utterances whose emotion is not one of the 5 classes.
    need_avd_target : the items carry an A/V/D target (``avd_target``), chosen by ``avd_source``
        (``choose_avd_target``); with ``annotation`` utterances without one are dropped. The report
        counts the targets by source (``avd_target``).
    max_text_tokens : drop utterances whose text branch (prompt + transcript + tail) is longer (256 in BLSP-Emo).
    ser_turns : None, or ``{"system_prompt", "instruction", "answer_template", "fraction", "seed"}``: that
        fraction of the utterances also appear as an SER question/answer item (id ``<utt_id>#ser``, the same
        audio, the stage-5 SER question, the answer ``answer_template`` with the true emotion); counted in the
        report (``ser_turns``). Not part of the paper's method (a recipe option; see ``train_*.yaml``).
    target_end, kl_positions : how the target ends and where the KL is taken (:func:`student_segments_pipeline`).

    Returns ``(dataset, report)``; the report (``rellm.utils.drop_report``) counts kept and dropped utterances
    by reason, with up to 5 example ids per reason.
    """
    drops, avd_sources = DropReport(), Counter()
    if need_avd_target and avd_source not in AVD_SOURCES:
        choose_avd_target(None, None, avd_source)  # raises the user error
    skip = drops.drop

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
        avd = None
        if need_avd_target:
            avd, source = choose_avd_target(cache.avd_annotation(utt_id), cache.avd_prediction(utt_id), avd_source)
            if avd is None:
                skip("no_avd_annotation", utt_id)
                continue
        transcript = rec.get("transcript") or entry.get("transcript") or ""
        if rec.get("transcript") and rec["transcript"] != (entry.get("transcript") or "").strip():
            # responses older than stage 1's data (same ids, other sentences): never train on them
            raise UserError(f"stage 3's response for {utt_id} was written for {rec['transcript']!r}, but the "
                            f"manifest now says {entry.get('transcript')!r}: stage 1 was re-run with other data "
                            "after stage 3; re-run stage 3 for this set (delete its exp/responses folder first)")
        if max_text_tokens:
            n = (
                len(layout.prompt_ids(teacher_system_prompt or system_prompt, rec.get("instruction", "")))
                + len(layout.encode_content(transcript))
                + len(response_segment(layout, rec["output"], rec.get("early_stop"), target_end)[0])
            )
            if n > max_text_tokens:
                skip("text_too_long", utt_id)
                continue
        if need_avd_target:
            avd_sources[source] += 1
        data[utt_id] = {
            "feature_id": utt_id,
            "turn": "behaviour",
            "duration": duration,
            "transcript": transcript,
            "emotion": emotion,
            "avd": avd,
            "response": rec["output"],
            "early_stop": bool(rec.get("early_stop", False)),
            "teacher_instruction": rec.get("instruction", ""),
        }
        if ser_turns and emotion in EMOTION_TO_ID and is_ser_turn_utterance(
                utt_id, ser_turns["fraction"], ser_turns.get("seed", 0)):
            data[f"{utt_id}#ser"] = {**data[utt_id], "turn": "ser", "teacher_instruction": "",
                                     "response": ser_turns["answer_template"].format(emotion=emotion)}
    for utt_id in sorted(set(by_id) - set(manifest)):
        skip("response_not_in_manifest", utt_id)
    n_ser = sum(1 for d in data.values() if d["turn"] == "ser")
    drops.keep(len(data) - n_ser)
    report = drops.as_dict()
    if ser_turns:
        report["ser_turns"] = n_ser
    if need_avd_target:
        report["avd_target"] = {"avd_source": avd_source, **{k: avd_sources[k] for k in ("annotation", "encoder")}}
        logger.info("A/V/D targets (avd_source=%s): %s", avd_source, report["avd_target"])
    if not data:
        raise ValueError(f"no utterance left for training after joining manifest, features and responses: {report}")
    drops.log(logger, "alignment data")

    items = [
        cached_features_pipeline(cache, with_emotion),
        student_segments_pipeline(layout, system_prompt, instruction,
                                  (ser_turns["system_prompt"], ser_turns["instruction"]) if ser_turns else None,
                                  target_end=target_end, kl_positions=kl_positions),
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
        keys.append("emotion_embedding")
    if need_avd_target:
        items.append(labels_pipeline())
        keys += ["emotion_id", "avd_target"]
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
