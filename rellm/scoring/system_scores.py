"""Scoring the systems' stage-5 outputs on one test set: empathy, SER, breakdowns, paired tests.

Input per system: ``<exp_root>/<system>/<split>/seed<seed>/infer/<test_set>/responses.jsonl``
with records ``{utt_id, transcript, emotion, response, ser_output, ser_pred}``.
Output: one ``metrics.json`` (per-system figures, comparisons of the reference
system against each baseline) and ``per_utt.jsonl`` (one line per utterance,
every system's response, SER answer and EPITOME levels). When the records carry
``response_emotion_pred`` (``rellm.scoring.response_emotion``), the response-emotion
UA is reported and compared like SER UA. Every metric of ``rellm.scoring.metric_registry`` (the share of the
transcript's content words each response repeats, ``rellm.scoring.response_words``, ...) is reported and compared
like the EPITOME levels.
"""
import logging
from pathlib import Path

import numpy as np

from rellm.data.emotions import EMOTIONS
from rellm.data.ser_metrics import UNKNOWN, ser_metrics, unweighted_accuracy
from rellm.scoring.epitome.data import LEVELS, MECHANISMS
from rellm.scoring.metric_registry import metrics as registered_metrics
from rellm.scoring.response_emotion import distinct_responses, has_predictions, response_emotion_metrics
from rellm.scoring.significance import (
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_bootstrap_statistic,
    wilcoxon_signed_rank,
)
from rellm.utils.io import read_jsonl

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("utt_id", "transcript", "emotion", "response", "ser_pred")


def experiment_dir(exp_root, system, split, seed, tag="", test_set=None):
    """``<exp_root>/<system>/<split>/seed<seed>``; with a ``tag`` (an ablation, ``<exp_root>/<tag>/...``) the tagged
    folder when it holds the system (its outputs for ``test_set`` when one is given), else the main run's (a baseline
    the ablation did not re-run)."""
    main = Path(exp_root) / system / str(split) / f"seed{seed}"
    if tag:
        tagged = Path(exp_root) / str(tag) / system / str(split) / f"seed{seed}"
        probe = tagged / "infer" / str(test_set) / "responses.jsonl" if test_set is not None else tagged
        if probe.exists():
            return tagged
    return main


def responses_path(exp_root, system, split, seed, test_set, tag=""):
    folder = experiment_dir(exp_root, system, split, seed, tag, test_set)
    return folder / "infer" / str(test_set) / "responses.jsonl"


def load_system_outputs(exp_root, systems, split, seed, test_set, tag=""):
    """``(outputs, missing)``: ``{system: {utt_id: record}}`` and ``{system: why}`` for those without outputs.

    A record lacking a required field or a repeated utt_id is an error naming the file.
    """
    outputs, missing = {}, {}
    for system in systems:
        path = responses_path(exp_root, system, split, seed, test_set, tag)
        if not path.is_file():
            missing[system] = f"{path} does not exist (run stage 5 for {system})"
            logger.warning("no outputs for %s: %s", system, missing[system])
            continue
        records = {}
        for k, rec in enumerate(read_jsonl(path), 1):
            lacking = [f for f in REQUIRED_FIELDS if f not in rec]
            if lacking:
                raise ValueError(f"{path}: record {k} lacks {lacking}; stage 5 writes "
                                 f"{', '.join(REQUIRED_FIELDS)}")
            if rec["utt_id"] in records:
                raise ValueError(f"{path}: utt_id {rec['utt_id']!r} occurs twice")
            records[rec["utt_id"]] = rec
        if not records:
            missing[system] = f"{path} is empty"
            logger.warning("no outputs for %s: %s", system, missing[system])
            continue
        outputs[system] = records
    return outputs, missing


def score_empathy(outputs, scorer, progress=True):
    """Add ``levels = {ER, IP, EX}`` to every record (seeker = transcript, response = response)."""
    for system, records in outputs.items():
        ids = sorted(records)
        logger.info("EPITOME levels for %s (%d responses)", system, len(ids))
        result = scorer.score([records[i]["transcript"] or "" for i in ids],
                              [records[i]["response"] or "" for i in ids], progress=progress)
        for k, utt in enumerate(ids):
            records[utt]["levels"] = {m: int(result[m]["level"][k]) for m in result}


def _ser_available(records):
    """Whether a system answered the SER question: it gave answer texts, or some answer parsed.

    An answer that names no emotion ("unknown") is a wrong answer, so a system that answered but
    whose answers all fail to parse scores UA 0 (not "no SER figures")."""
    return any(r.get("ser_output") for r in records.values()) or any(
        r.get("ser_pred") in EMOTIONS for r in records.values())


def _mean(values):
    return float(np.mean(values)) if len(values) else None


def not_available_reasons(records, metrics, response_emotion_missing=None):
    """``{figure: why}`` for the figures of ``metrics`` (one system's) that could not be computed: RESULTS.md shows
    them as n/a with this reason, and the rest of stage 6 goes on."""
    why = {}
    n = len(records)
    if metrics.get("ser") is None:
        why["ser"] = (f"no SER answers: all {n} SER answers are empty and none names an emotion"
                      if all("ser_output" in r for r in records.values()) else
                      "no SER answers: the records carry no ser_output")
    if metrics.get("ser_head") is None:
        why["ser_head"] = ("no emotion-head labels (stage 5 records ser_head_pred only for a speech system with an "
                           "emotion head)")
    if metrics.get("response_emotion") is None:
        why["response_emotion"] = response_emotion_missing or "the responses were not read by the classifier"
    for metric in registered_metrics():
        if (metrics.get(metric.name) or {}).get(metric.headline) is None:
            why[metric.name] = metric.not_available
    return why


def empty_responses_note(records):
    """A note when some responses are empty: they are scored as given (an empty reply's EPITOME levels, a wrong
    response emotion), never dropped."""
    empty = sum(not (r.get("response") or "").strip() for r in records.values())
    return (f"{empty} of {len(records)} responses are empty (scored as given: EPITOME levels of an empty reply, "
            "response emotion wrong)") if empty else None


def system_metrics(records, mechanisms, response_emotion_missing=None):
    """Mean levels, level distributions, SER figures and the two breakdowns for one system; ``not_available`` says
    why a figure is missing (``response_emotion_missing``: why the response-emotion classifier read nothing)."""
    ids = sorted(records)
    refs = [records[i]["emotion"] for i in ids]
    preds = [records[i]["ser_pred"] or UNKNOWN for i in ids]
    correct = np.array([r == p for r, p in zip(refs, preds)])
    out = {"n": len(ids), "empathy": {}, "ser": None, "ser_head": None, "empathy_by_ser": {}, "per_emotion": {},
           "response_emotion": response_emotion_metrics(records) if has_predictions(records) else None,
           "distinct_responses": distinct_responses(records),
           **{metric.name: metric.section(records) for metric in registered_metrics()}}
    levels = {m: np.array([records[i]["levels"][m] for i in ids]) for m in mechanisms}
    for m in mechanisms:
        counts = [int(np.sum(levels[m] == lv)) for lv in LEVELS]
        out["empathy"][m] = {"mean": _mean(levels[m]), "counts": counts,
                             "distribution": [c / len(ids) for c in counts]}
    # the speech systems' emotion head (stage 5 records its label when the system has one)
    if records and all(records[i].get("ser_head_pred") in EMOTIONS for i in ids) and all(r in EMOTIONS for r in refs):
        out["ser_head"] = ser_metrics(refs, [records[i]["ser_head_pred"] for i in ids])
    if _ser_available(records):
        out["ser"] = ser_metrics(refs, preds)
        for m in mechanisms:
            out["empathy_by_ser"][m] = {
                "correct": {"n": int(correct.sum()), "mean": _mean(levels[m][correct])},
                "wrong": {"n": int((~correct).sum()), "mean": _mean(levels[m][~correct])},
            }
    for emotion in EMOTIONS:
        sel = np.array([r == emotion for r in refs])
        if not sel.any():
            continue
        entry = {"n": int(sel.sum())}
        for m in mechanisms:
            entry[m] = _mean(levels[m][sel])
        if out["ser"] is not None:
            entry["ser_recall"] = float(correct[sel].mean())
        if out["response_emotion"] is not None:
            entry["response_emotion_recall"] = out["response_emotion"]["per_class_recall"].get(emotion)
        out["per_emotion"][emotion] = entry
    out["not_available"] = not_available_reasons(records, out, response_emotion_missing)
    out["empty_responses"] = empty_responses_note(records)
    return out


def reference_metrics(records, mechanisms):
    """The teacher's expected responses scored like a system (no SER): EPITOME levels, response emotion (when the
    classifier read them), repeated responses, response words. The ceiling each figure allows."""
    ids = sorted(records)
    out = {"n": len(ids), "empathy": {},
           "response_emotion": response_emotion_metrics(records) if has_predictions(records) else None,
           "distinct_responses": distinct_responses(records),
           **{metric.name: metric.section(records) for metric in registered_metrics()}}
    if ids and all("levels" in records[i] for i in ids):
        for m in mechanisms:
            values = np.array([records[i]["levels"][m] for i in ids])
            counts = [int(np.sum(values == lv)) for lv in LEVELS]
            out["empathy"][m] = {"mean": _mean(values), "counts": counts,
                                 "distribution": [c / len(ids) for c in counts]}
    return out


def compare_labels(refs, pred_a, pred_b, n_resamples, seed):
    """Two systems' labels for the same utterances (SER answers, or the emotions read from their responses):
    UA of each, the UA difference, McNemar (exact) on per-utterance correctness and a paired bootstrap CI
    of the UA difference (a tenth of ``n_resamples``: each resample recomputes two UAs)."""
    ua_a, ua_b = unweighted_accuracy(refs, pred_a), unweighted_accuracy(refs, pred_b)
    correct_a = np.array([r == p for r, p in zip(refs, pred_a)])
    correct_b = np.array([r == p for r, p in zip(refs, pred_b)])
    refs_arr, pa, pb = np.array(refs), np.array(pred_a), np.array(pred_b)
    return {
        "ua_reference": ua_a, "ua_baseline": ua_b,
        "ua_difference_points": (ua_a - ua_b) * 100,
        "ua_relative_improvement_pct": (ua_a - ua_b) / ua_b * 100 if ua_b > 0 else None,
        "wa_reference": float(correct_a.mean()), "wa_baseline": float(correct_b.mean()),
        "mcnemar": mcnemar_exact(correct_a, correct_b),
        "ua_bootstrap": paired_bootstrap_statistic(
            len(refs),
            lambda idx: unweighted_accuracy(list(refs_arr[idx]), list(pa[idx]))
            - unweighted_accuracy(list(refs_arr[idx]), list(pb[idx])),
            n_resamples=max(1, n_resamples // 10), seed=seed),
    }


def compare_systems(reference, baseline, mechanisms, n_resamples, seed):
    """Paired comparison of two systems' records over the utterances both have."""
    common = sorted(set(reference) & set(baseline))
    out = {"n_paired": len(common), "only_reference": len(set(reference) - set(baseline)),
           "only_baseline": len(set(baseline) - set(reference)), "empathy": {}, "ser": None,
           "response_emotion": None, **{metric.name: None for metric in registered_metrics()}}
    if not common:
        return out
    for m in mechanisms:
        a = np.array([reference[u]["levels"][m] for u in common], dtype=float)
        b = np.array([baseline[u]["levels"][m] for u in common], dtype=float)
        mean_b = float(b.mean())
        out["empathy"][m] = {
            "reference_mean": float(a.mean()), "baseline_mean": mean_b,
            "relative_improvement_pct": (float(a.mean()) - mean_b) / mean_b * 100 if mean_b > 0 else None,
            "wilcoxon": wilcoxon_signed_rank(a, b),
            "bootstrap": paired_bootstrap_ci(a, b, n_resamples=n_resamples, seed=seed),
        }
    ref_sub = {u: reference[u] for u in common}
    base_sub = {u: baseline[u] for u in common}
    refs = [reference[u]["emotion"] for u in common]
    if _ser_available(ref_sub) and _ser_available(base_sub):
        out["ser"] = compare_labels(refs, [reference[u]["ser_pred"] or UNKNOWN for u in common],
                                    [baseline[u]["ser_pred"] or UNKNOWN for u in common], n_resamples, seed)
    if has_predictions(ref_sub) and has_predictions(base_sub):
        out["response_emotion"] = compare_labels(
            refs, [reference[u]["response_emotion_pred"] for u in common],
            [baseline[u]["response_emotion_pred"] for u in common], n_resamples, seed)
    for metric in registered_metrics():
        a, b = metric.paired(reference, baseline, common)
        if len(a):
            out[metric.name] = {"n_paired": len(a), "reference_mean": float(a.mean()), "baseline_mean": float(b.mean()),
                                "wilcoxon": wilcoxon_signed_rank(a, b),
                                "bootstrap": paired_bootstrap_ci(a, b, n_resamples=n_resamples, seed=seed)}
    return out


def per_utterance_records(outputs):
    """One record per utterance with every system's answer and levels (``per_utt.jsonl``)."""
    utts = sorted(set().union(*[set(r) for r in outputs.values()])) if outputs else []
    per_metric = [(metric, {system: metric.values(records, records) for system, records in outputs.items()})
                  for metric in registered_metrics()]
    lines = []
    for utt in utts:
        first = next(records[utt] for records in outputs.values() if utt in records)
        line = {"utt_id": utt, "emotion": first["emotion"], "transcript": first["transcript"], "systems": {}}
        for system, records in outputs.items():
            if utt not in records:
                continue
            rec = records[utt]
            line["systems"][system] = {
                "response": rec["response"], "ser_pred": rec["ser_pred"],
                "ser_correct": rec["ser_pred"] == rec["emotion"], **rec.get("levels", {}),
                **{metric.utterance_key: values[system][utt] for metric, values in per_metric}}
            if "response_emotion_pred" in rec:
                line["systems"][system]["response_emotion_pred"] = rec["response_emotion_pred"]
        lines.append(line)
    return lines


def score_test_set(outputs, missing, reference_system, mechanisms=MECHANISMS, n_resamples=10000, seed=0,
                   response_emotion_missing=None):
    """``metrics.json`` content for already EPITOME-scored outputs."""
    metrics = {
        "systems": {s: system_metrics(r, mechanisms, response_emotion_missing) for s, r in outputs.items()},
        "missing_systems": missing,
        "reference_system": reference_system,
        "comparisons": {},
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
    }
    if reference_system not in outputs:
        if outputs:
            logger.warning("reference system %s has no outputs; no significance tests", reference_system)
        return metrics
    for system in outputs:
        if system != reference_system:
            metrics["comparisons"][system] = compare_systems(
                outputs[reference_system], outputs[system], mechanisms, n_resamples, seed)
    return metrics
