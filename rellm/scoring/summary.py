"""Results that accumulate: every scored (split, seed) of a recipe, their mean ± sd, and significance on the pooled pairs.

Stage 6 scores one (split, seed) at a time into ``<scores root>/<split>/seed<k>/<test set>/`` (``rellm.bin.score``);
``rellm.bin.results`` then rewrites RESULTS.md from all of them. With more than one run (seeds, IEMOCAP folds) this
module gives, per test set:

- the mean, sample standard deviation and number of runs of every figure of every system (and the teacher's
  reference row), written to ``<scores root>/summary.json`` as ``{test set: {system: {metric: {mean, sd, n}}}}``;
- the same without the runs whose test set overlaps a system's training data (``test_overlap`` of metrics.json,
  ``rellm.scoring.training_data``), and which runs those are;
- RE-LLM against each baseline on the per-utterance pairs of all runs pooled (``per_utt.jsonl``): Wilcoxon
  signed-rank and a paired bootstrap interval on the EPITOME levels and the response-word recalls, McNemar on SER
  and response-emotion correctness (docs/evaluation.md#significance). An utterance scored in k runs (k seeds)
  gives k pairs, so these p-values summarise the runs; they are not k times the evidence.
  Written to ``<scores root>/pooled_comparisons.json``.
"""
import math
import re
from pathlib import Path

import numpy as np

from rellm.scoring.metric_registry import metrics as registered_metrics
from rellm.scoring.significance import mcnemar_exact, paired_bootstrap_ci, wilcoxon_signed_rank
from rellm.systems import TEACHER
from rellm.utils.io import read_json, read_jsonl


def figure_columns():
    """``{metric key: (column title, scale for display, digits)}`` in table order; the EPITOME mechanisms come first
    (their own keys), the metrics of ``rellm.scoring.metric_registry`` after the response-emotion UA."""
    return {
        "ua": ("UA (%)", 100, 1),
        "wa": ("WA (%)", 100, 1),
        "ser_head_ua": ("SER head UA (%)", 100, 1),
        "response_emotion_ua": ("resp. emotion UA (%)", 100, 1),
        **{m.name: (m.column, m.scale, m.digits) for m in registered_metrics()},
        "same_response": ("same response (%)", 100, 1),
    }


def scores_root(exp_root, tag=""):
    """``<exp_root>/scores``, or ``<exp_root>/<tag>/scores`` for an ablation's own results (``--tag``)."""
    return Path(exp_root) / str(tag) / "scores" if tag else Path(exp_root) / "scores"


def _get(section, *keys):
    for key in keys:
        if not isinstance(section, dict):
            return None
        section = section.get(key)
    return section if isinstance(section, (int, float)) and not (isinstance(section, float) and math.isnan(section)) \
        else None


def figures_of(m, mechanisms):
    """``{metric: value}`` of one system's (or the teacher's) section of metrics.json; absent figures are left out."""
    out = {k: _get(m, "empathy", k, "mean") for k in mechanisms}
    out.update(ua=_get(m, "ser", "ua"), wa=_get(m, "ser", "wa"), ser_head_ua=_get(m, "ser_head", "ua"),
               response_emotion_ua=_get(m, "response_emotion", "ua"))
    out.update({metric.name: _get(m, metric.name, metric.headline) for metric in registered_metrics()})
    out.update(same_response=_get(m, "distinct_responses", "most_common_share"))
    return {k: v for k, v in out.items() if v is not None}


def teacher_section(metrics):
    """The teacher's reference row of a metrics.json (older scores kept it under response_emotion only)."""
    teacher = metrics.get("teacher")
    if teacher and "n" in teacher:
        return teacher
    return (metrics.get("response_emotion") or {}).get("teacher")


def run_figures(metrics, mechanisms):
    """``{system: {metric: value}}`` of one scored test set, the teacher's row under ``teacher``."""
    out = {s: figures_of(m, mechanisms) for s, m in metrics.get("systems", {}).items()}
    teacher = teacher_section(metrics)
    if teacher:
        out[TEACHER] = figures_of(teacher, mechanisms)
    return out


def discover_runs(root, test_sets):
    """``[(split, seed)]`` under ``root`` (``<split>/seed<k>/<test set>/metrics.json``), sorted by split then seed."""
    found = set()
    for test_set in test_sets:
        for path in Path(root).glob(f"*/seed*/{test_set}/metrics.json"):
            match = re.fullmatch(r"seed(\d+)", path.parent.parent.name)
            if match:
                found.add((path.parent.parent.parent.name, int(match.group(1))))
    return sorted(found)


def load_runs(root, runs, test_sets):
    """``{(split, seed): {test set: metrics}}`` for the runs' scored test sets."""
    out = {}
    for split, seed in runs:
        out[(split, seed)] = {}
        for test_set in test_sets:
            path = Path(root) / str(split) / f"seed{seed}" / test_set / "metrics.json"
            if path.is_file():
                out[(split, seed)][test_set] = read_json(path)
    return out


def mean_sd(values):
    """``{"mean", "sd", "n"}``: sample standard deviation (n - 1), ``None`` with one value."""
    values = [float(v) for v in values]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "n": len(values)}


def summarise(runs_metrics, test_set, mechanisms, exclude=()):
    """``{system: {metric: {mean, sd, n}}}`` over the runs holding ``test_set`` (``exclude``: runs left out)."""
    collected = {}
    for run, by_set in runs_metrics.items():
        if run in exclude or test_set not in by_set:
            continue
        for system, figures in run_figures(by_set[test_set], mechanisms).items():
            for metric, value in figures.items():
                collected.setdefault(system, {}).setdefault(metric, []).append(value)
    return {s: {k: mean_sd(v) for k, v in figures.items()} for s, figures in collected.items()}


def overlapping_runs(runs_metrics, test_set):
    """``{(split, seed): {system: reason}}`` of the runs whose test set overlaps a system's training data."""
    return {run: by_set[test_set]["test_overlap"] for run, by_set in runs_metrics.items()
            if test_set in by_set and by_set[test_set].get("test_overlap")}


def _pairs(lines, reference, baseline, key, runs_ok=True):
    a, b = [], []
    if not runs_ok:
        return a, b
    for line in lines:
        ref, base = line["systems"].get(reference), line["systems"].get(baseline)
        if ref is None or base is None:
            continue
        va, vb = key(ref, line), key(base, line)
        if va is not None and vb is not None:
            a.append(va)
            b.append(vb)
    return a, b


def pooled_comparisons(root, runs_metrics, test_set, mechanisms, n_resamples=10000, seed=0):
    """RE-LLM (each run's reference system) against every baseline on the pooled per-utterance pairs of all runs.

    ``{"runs": [...], "reference_system", "comparisons": {baseline: {"n_runs", "empathy": {m: {...}}, "ser",
    "response_emotion", <each metric of rellm.scoring.metric_registry>}}}``; a figure without pairs is ``None``.
    """
    extra = registered_metrics()
    pooled = {}
    reference = None
    used = []
    for (split, run_seed), by_set in sorted(runs_metrics.items()):
        metrics = by_set.get(test_set)
        path = Path(root) / str(split) / f"seed{run_seed}" / test_set / "per_utt.jsonl"
        if metrics is None or not path.is_file():
            continue
        reference = metrics.get("reference_system", "rellm")
        systems = metrics.get("systems", {})
        if reference not in systems:
            continue
        used.append(f"{split} seed{run_seed}")
        lines = read_jsonl(path)
        for baseline in systems:
            if baseline == reference:
                continue
            entry = pooled.setdefault(baseline, {"n_runs": 0, "levels": {m: ([], []) for m in mechanisms},
                                                 "ser": ([], []), "response_emotion": ([], []),
                                                 "metrics": {metric.name: ([], []) for metric in extra}})
            entry["n_runs"] += 1
            for m in mechanisms:
                a, b = _pairs(lines, reference, baseline, lambda r, _, m=m: r.get(m))
                entry["levels"][m][0].extend(a)
                entry["levels"][m][1].extend(b)
            both_ser = systems[reference].get("ser") is not None and systems[baseline].get("ser") is not None
            a, b = _pairs(lines, reference, baseline, lambda r, _: r.get("ser_correct"), both_ser)
            entry["ser"][0].extend(a)
            entry["ser"][1].extend(b)
            a, b = _pairs(lines, reference, baseline,
                          lambda r, line: (r["response_emotion_pred"] == line["emotion"])
                          if "response_emotion_pred" in r else None)
            entry["response_emotion"][0].extend(a)
            entry["response_emotion"][1].extend(b)
            for metric in extra:
                a, b = _pairs(lines, reference, baseline, lambda r, _, key=metric.utterance_key: r.get(key))
                entry["metrics"][metric.name][0].extend(a)
                entry["metrics"][metric.name][1].extend(b)
    comparisons = {}
    for baseline, entry in pooled.items():
        out = {"n_runs": entry["n_runs"], "empathy": {}, "ser": None, "response_emotion": None,
               **{metric.name: None for metric in extra}}
        for m, (a, b) in entry["levels"].items():
            if a:
                out["empathy"][m] = _numeric(a, b, n_resamples, seed)
        for key in ("ser", "response_emotion"):
            a, b = entry[key]
            if a:
                out[key] = {"n_pairs": len(a), "accuracy_reference": float(np.mean(a)),
                            "accuracy_baseline": float(np.mean(b)), "mcnemar": mcnemar_exact(a, b)}
        for name, (a, b) in entry["metrics"].items():
            if a:
                out[name] = _numeric(a, b, n_resamples, seed)
        comparisons[baseline] = out
    return {"runs": used, "reference_system": reference, "comparisons": comparisons}


def _numeric(a, b, n_resamples, seed):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return {"n_pairs": len(a), "reference_mean": float(a.mean()), "baseline_mean": float(b.mean()),
            "wilcoxon": wilcoxon_signed_rank(a, b),
            "bootstrap": paired_bootstrap_ci(a, b, n_resamples=n_resamples, seed=seed)}


def summary_json(runs_metrics, test_sets, mechanisms):
    """The content of ``summary.json``: ``{test set: {system: {metric: {mean, sd, n}}}}``."""
    return {t: summarise(runs_metrics, t, mechanisms) for t in test_sets
            if any(t in by_set for by_set in runs_metrics.values())}
