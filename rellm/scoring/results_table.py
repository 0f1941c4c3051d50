"""The recipe's RESULTS.md: environment, protocol, command, a summary over the scored runs, one paper-style table
per scored (split, seed) and test set, the paper's figures beside ours, plots.

Rows: the scored systems (labels from ``rellm.systems``: text-only LLM, BLSP-Emo baseline, RE-LLM, any
other name as it is) and the teacher's expected responses as the ceiling row; columns ER, IP, EX (mean EPITOME
level, 0..2), UA, WA (%) and our additions. Under the table, RE-LLM's relative change against each baseline is
written the way the paper writes it ("EX +35.4% vs text-only"), with Wilcoxon / McNemar significance marks. A
figure that could not be computed is "n/a", its reason listed under the table; a system trained on the test set
(``test_overlap``) is marked † (‡: the sources do not say), with the reason.
"""
import datetime
import importlib.metadata
import math
import os
import platform
import shutil
from pathlib import Path

from rellm.scoring.metric_registry import metrics as registered_metrics
from rellm.scoring.paper_figures import ours_from_metrics, ours_from_summary, paper_comparison
from rellm.scoring.significance import significance_mark
from rellm.scoring.summary import figure_columns, overlapping_runs, summarise, teacher_section
from rellm.systems import TEACHER, TEACHER_LABEL, mark_letter, ordered, short_name
from rellm.systems import label as _label
from rellm.utils.revision import git_revision

PACKAGES = ("torch", "torchaudio", "transformers", "speechbrain", "peft", "numpy", "scipy", "scikit-learn")


def environment():
    """Date, git hash, Python and package versions, device: the RESULTS.md environment block."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        else:
            device = f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    except ImportError:
        device = "unknown"
    rev, dirty = git_revision()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": rev + (" (with uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "packages": versions,
        "device": device,
    }


def _fmt(value, scale=1.0, digits=3):
    if value is None:
        return "–"
    return "n/a" if math.isnan(value) else f"{value * scale:.{digits}f}"  # NaN: no class to average over


def _relative(value):
    return "n/a (baseline 0)" if value is None else f"{value:+.1f}%"


def results_table(metrics, mechanisms, repeated_max_share=None):
    """Markdown rows of the paper-style table for one test set (missing systems get a marked row).

    Besides the paper's columns (our additions): the response-emotion UA, the share of the transcript's content
    words the responses repeat (and its chance level), the share of the test utterances given the system's single
    most frequent response (marked ✗ above ``repeated_max_share``), and a last row for the teacher's own expected
    responses when stage 3 produced them for this test set.
    """
    extra = registered_metrics()
    header = ("| system | " + " | ".join(mechanisms) + " | UA (%) | WA (%) | SER head UA (%) | resp. emotion UA (%) | "
              + "".join(f"{metric.column} | " for metric in extra) + "same response (%) | n |")
    lines = [header, "|" + "---|" * (len(mechanisms) + 7 + len(extra))]
    comparisons = metrics.get("comparisons", {})
    reference = metrics.get("reference_system", "rellm")
    marks_against = {}
    for baseline, comp in comparisons.items():
        for mech, c in comp.get("empathy", {}).items():
            marks_against.setdefault(mech, []).append(
                (baseline, significance_mark(c["wilcoxon"]["p_value"]), c["reference_mean"] < c["baseline_mean"]))
        for key, column in (("ser", "UA"), ("response_emotion", "RE")):
            if comp.get(key):
                c = comp[key]
                marks_against.setdefault(column, []).append(
                    (baseline, significance_mark(c["mcnemar"]["p_value"]), c["ua_reference"] < c["ua_baseline"]))
        for metric in extra:
            c = comp.get(metric.name)
            if c:
                marks_against.setdefault(metric.name, []).append(
                    (baseline, significance_mark(c["wilcoxon"]["p_value"]), c["reference_mean"] < c["baseline_mean"]))
    overlap = metrics.get("test_overlap") or {}
    for system, label in _rows(metrics):
        m = metrics["systems"].get(system)
        if system in overlap:
            label += " ‡" if overlap[system].startswith("unknown") else " †"
        if m is None:
            why = metrics.get("missing_systems", {}).get(system, "not scored")
            lines.append(f"| {label} | " + " | ".join(["missing"] * (len(mechanisms) + 5 + len(extra))) + " | – |")
            lines[-1] += f" <!-- {why} -->"
            continue
        na = m.get("not_available") or {}

        def cell(section, key, scale=100, digits=1, why=None, mark=None, marked=system == reference):
            if not section:
                return "n/a" if why else "–"
            text = _fmt(section[key], scale, digits)
            return text + (_mark_suffix(marks_against.get(mark, [])) if mark and marked else "")

        cells = [cell(m["empathy"].get(mech), "mean", 1, 3, mark=mech) for mech in mechanisms]
        cells += [cell(m["ser"], "ua", why=na.get("ser"), mark="UA"), cell(m["ser"], "wa", why=na.get("ser")),
                  cell(m.get("ser_head"), "ua", why=na.get("ser_head")),
                  cell(m.get("response_emotion"), "ua", why=na.get("response_emotion"), mark="RE")]
        for metric in extra:
            text = metric.table_cell(m.get(metric.name))
            if text == "–" and na.get(metric.name):
                text = "n/a"
            elif text != "–" and system == reference:
                text += _mark_suffix(marks_against.get(metric.name, []))
            cells.append(text)
        cells += [_repeated_cell(m.get("distinct_responses"), repeated_max_share), str(m["n"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    teacher = teacher_section(metrics)
    if teacher:
        empathy = teacher.get("empathy") or {}
        resp = teacher.get("response_emotion")
        cells = ([_fmt((empathy.get(mech) or {}).get("mean")) for mech in mechanisms] + ["–"] * 3
                 + [_fmt(resp["ua"], 100, 1) if resp else "n/a"]
                 + [metric.table_cell(teacher.get(metric.name)) for metric in extra]
                 + [_repeated_cell(teacher["distinct_responses"], repeated_max_share), str(teacher["n"])])
        lines.append(f"| {TEACHER_LABEL} | " + " | ".join(cells) + " |")
    return lines


NA_FIGURES = {"ser": "UA / WA", "ser_head": "SER head UA", "response_emotion": "resp. emotion UA"}


def _na_figure(figure):
    """How an n/a line names a figure of ``metrics.json``."""
    metric = next((m for m in registered_metrics() if m.name == figure), None)
    return (metric.short or metric.column) if metric else NA_FIGURES.get(figure, figure)


def not_available_lines(metrics):
    """Why each n/a cell of the table is n/a, one line per figure and reason (the systems it concerns)."""
    grouped = {}
    said = (metrics.get("response_emotion") or {}).get("missing")  # the "not measured" line already gives it
    for system, m in metrics.get("systems", {}).items():
        for figure, why in (m.get("not_available") or {}).items():
            if not (figure == "response_emotion" and why == said):
                grouped.setdefault((figure, why), []).append(_label(system))
        if m.get("empty_responses"):
            grouped.setdefault(("empty", m["empty_responses"]), []).append(_label(system))
    lines = []
    for (figure, why), systems in grouped.items():
        if figure == "empty":
            lines.append(f"- note ({', '.join(systems)}): {why}")
        else:
            lines.append(f"- n/a: {_na_figure(figure)} of {', '.join(systems)}: {why}")
    teacher = teacher_section(metrics)
    if teacher is not None and not teacher.get("empathy"):
        lines.append("- the teacher row's EPITOME levels are not in these scores (re-score with "
                     "--score_args --overwrite=true)")
    return lines


def overlap_lines(metrics):
    """† / ‡ under the table: the systems trained (or perhaps trained) on this test set, and how."""
    overlap = metrics.get("test_overlap")
    if overlap is None:
        return [("- training-data overlap not checked: these scores predate the check (re-score with "
                 "--score_args --overwrite=true)")]
    if not overlap:
        return [("- training-data overlap: none of these systems holds a checkpoint known to be trained on this "
                 "test set (docs/datasets.md#training-data-of-the-imported-checkpoints)")]
    lines = []
    for system, why in overlap.items():
        sign = "‡" if why.startswith("unknown") else "†"
        lines.append(f"- {sign} {_label(system)}: {why}")
    return lines


def _points_line(what, baseline_name, reference, baseline, unit, test, boot):
    """"response words -40.1 points vs text-only (0.4% vs 40.5% ...; Wilcoxon p=...; 95% CI ...)": two shares."""
    return (f"{what} {(reference - baseline) * 100:+.1f} points vs {baseline_name} ({reference * 100:.1f}% vs "
            f"{baseline * 100:.1f}%{unit}; {test}; 95% CI of the difference "
            f"[{boot['ci_low'] * 100:+.1f}, {boot['ci_high'] * 100:+.1f}] points)")


def _shown(metric, value):
    """A metric's mean as shown in sentences: a share in % (``scale`` 100), else the value."""
    return f"{value * 100:.1f}%" if metric.scale == 100 else f"{value * metric.scale:.{metric.digits}f}"


def _numeric_line(metric, baseline_name, c):
    """The comparison sentence of a registered metric (``rellm.scoring.metric_registry``): a share in points, like
    "response words -40.1 points vs text-only (...)", else the difference of the means, like the EPITOME levels."""
    test = f"Wilcoxon p={c['wilcoxon']['p_value']:.3g}"
    if metric.scale == 100:
        return _points_line(metric.what, baseline_name, c["reference_mean"], c["baseline_mean"], metric.unit, test,
                            c["bootstrap"])
    boot, d = c["bootstrap"], metric.digits
    return (f"{metric.what} {(c['reference_mean'] - c['baseline_mean']) * metric.scale:+.{d}f} vs {baseline_name} "
            f"({_shown(metric, c['reference_mean'])} vs {_shown(metric, c['baseline_mean'])}{metric.unit}; {test}; "
            f"95% CI of the difference [{boot['ci_low'] * metric.scale:+.{d}f}, {boot['ci_high'] * metric.scale:+.{d}f}])")


def _repeated_cell(distinct, max_share):
    if not distinct:
        return "–"
    # the check: no response given to more than max_share of the test utterances
    cell = _fmt(distinct["most_common_share"], 100, 1)
    if max_share is not None and distinct["most_common_share"] > max_share:
        cell += " ✗"
    return cell


def _rows(metrics):
    """``[(system, label)]`` of the scored and the missing systems, in table order."""
    return [(s, _label(s)) for s in ordered(list(metrics["systems"]) + list(metrics.get("missing_systems", {})))]


def _mark_suffix(marks):
    """``<sup>**t</sup><sup>*B↓</sup>``: one mark per baseline (its letter in ``rellm.systems``: t = text-only,
    B = BLSP-Emo, F = BLSP-Emo fine-tuned); ↓ = RE-LLM lower."""
    text = "".join(f"<sup>{mark}{mark_letter(base)}{'↓' if worse else ''}</sup>"
                   for base, mark, worse in marks if mark)
    return f" {text}" if text else ""


def improvement_lines(metrics, mechanisms):
    """Sentences such as "EX +35.4% vs text-only (Wilcoxon p=0.003; 95% CI of the difference [0.08, 0.21])"."""
    lines = []
    reference = metrics.get("reference_system", "rellm")
    for baseline, comp in metrics.get("comparisons", {}).items():
        name = short_name(baseline)
        parts = []
        for mech in mechanisms:
            c = comp["empathy"].get(mech)
            if not c:
                continue
            boot = c["bootstrap"]
            parts.append(f"{mech} {_relative(c['relative_improvement_pct'])} vs {name} "
                         f"({c['reference_mean']:.3f} vs {c['baseline_mean']:.3f}; Wilcoxon p={c['wilcoxon']['p_value']:.3g}; "
                         f"95% CI of the difference [{boot['ci_low']:+.3f}, {boot['ci_high']:+.3f}])")
        if comp.get("ser"):
            s = comp["ser"]
            boot = s["ua_bootstrap"]
            parts.append(f"UA {s['ua_difference_points']:+.1f} points ({_relative(s['ua_relative_improvement_pct'])}) "
                         f"vs {name} (McNemar p={s['mcnemar']['p_value']:.3g}; 95% CI of the UA difference "
                         f"[{boot['ci_low'] * 100:+.1f}, {boot['ci_high'] * 100:+.1f}] points)")
        if comp.get("response_emotion"):
            r = comp["response_emotion"]
            parts.append(_points_line("response-emotion UA", name, r["ua_reference"], r["ua_baseline"], "",
                                      f"McNemar p={r['mcnemar']['p_value']:.3g}", r["ua_bootstrap"]))
        for metric in registered_metrics():
            w = comp.get(metric.name)
            if w:
                parts.append(_numeric_line(metric, name, w))
        if parts:
            lines.append(f"- {_label(reference)} vs {name} on {comp['n_paired']} paired utterances:")
            lines += [f"  - {p}" for p in parts]
    return lines


def copy_plots(scores_dir, test_set, figures_dir):
    """Copy a test set's PNGs beside RESULTS.md; returns the copied paths."""
    copied = []
    src = Path(scores_dir) / test_set
    for png in sorted(src.glob("*.png")):
        dest = Path(figures_dir) / test_set / png.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dest)
        copied.append(dest)
    return copied


def _run_name(run):
    split, seed = run
    return f"{split} seed{seed}"


def render_results(corpus, runs, test_sets, scores_root, output, command, mechanisms, runs_metrics, notes=(),
                   env=None, epitome_metrics=None, example_max_chars=160, repeated_max_share=0.10, tag="",
                   pooled=None):
    """The RESULTS.md text for every scored run ``runs`` (``[(split, seed)]``) under ``scores_root``.

    ``runs_metrics``: ``{(split, seed): {test set: metrics}}`` (``rellm.scoring.summary.load_runs``); ``pooled``:
    ``{test set: pooled comparisons}`` (``rellm.scoring.summary.pooled_comparisons``). With more than one run a
    summary (mean ± sd and n, pooled significance, overlapping runs) comes first. A test set without
    ``metrics.json`` gets a message instead of a table.
    """
    env = env or environment()
    output = Path(output)
    figures_root = output.parent / ("results_figures" + (f"_{tag}" if tag else ""))
    title = f"# RESULTS: {corpus}" + (f" (ablation {tag})" if tag else "")
    lines = [title, "", "Generated by stage 6 (`rellm.bin.results`); review before committing.", ""]
    lines += ["## Environment", "", "```",
              f"date: {env['date']}", f"git: {env['git']}", f"python: {env['python']}",
              "packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
              f"device: {env['device']}", "```", ""]
    classes, n_test = set(), {}
    all_metrics = {}  # one metrics.json per test set (the first run that has it), for the protocol lines
    for run in runs:
        for test_set, metrics in runs_metrics.get(run, {}).items():
            all_metrics.setdefault(test_set, metrics)
            for m in metrics["systems"].values():
                n_test.setdefault(test_set, {})[_run_name(run)] = m["n"]
                if m["ser"]:
                    classes |= set(m["ser"]["classes_present"])
                classes |= set(m["per_emotion"])
    from rellm.data.emotions import EMOTIONS

    def sizes(t):
        counts = n_test.get(t, {})
        if len(set(counts.values())) <= 1:
            return f"{t} ({next(iter(counts.values()), 0)} utterances)"
        return f"{t} ({', '.join(f'{n} in {r}' for r, n in counts.items())} utterances)"

    encoder = next((m['epitome']['encoder'] for m in all_metrics.values() if 'encoder' in m.get('epitome', {})),
                   'unknown')
    lines += ["## Protocol", "",
              (f"- corpus: {corpus}; scored runs (split/fold, seed): {', '.join(_run_name(r) for r in runs)} "
               f"({len(runs)} run{'s' if len(runs) != 1 else ''}"
               + ("; the summary below gives their mean ± sd" if len(runs) > 1 else "") + ")"
               + (f"; ablation tag {tag}: its own scores and this file, never over the main results" if tag else "")),
              f"- test set(s): {', '.join(sizes(t) for t in test_sets)}",
              (f"- emotion classes present in the reference: {', '.join(e for e in EMOTIONS if e in classes) or 'none'}"
              " (UA averages recall over these; an unparsed SER answer counts as wrong)"),
              ("- UA / WA: SER read from each system's generated answer to the SER question, as in the paper; "
              "SER head UA: the speech systems' 5-way emotion head on the pooled adapter output (trained by step 2's "
              "emotion cross-entropy; stage 5 records its label), a second figure that needs no text generation"),
              ("- empathy: mean EPITOME level (0..2) with seeker post = transcript, response = system response; "
              f"classifiers re-trained here on the encoder {encoder} (the paper's: roberta-base; see below); the "
              "teacher row scores the teacher's expected responses the same way: the ceiling each figure allows"),
              ("- significance: RE-LLM vs each baseline, Wilcoxon signed-rank on per-utterance levels, McNemar (exact) "
              "on SER correctness; marks <sup>*t</sup>/<sup>*B</sup>/<sup>*F</sup> = p<0.05 against "
              "text-only/BLSP-Emo/BLSP-Emo fine-tuned (** p<0.01, *** p<0.001; ↓ = RE-LLM significantly lower); paired "
              "bootstrap 95% CIs below the table"),
              ("- training-data overlap (docs/datasets.md#training-data-of-the-imported-checkpoints): † marks a system "
               "whose checkpoint, or the checkpoint it was initialised from, was trained on this test set's "
               "utterances, ‡ one whose sources do not say; its scores are not a fair comparison. n/a: a figure that "
               "could not be computed, its reason under the table")]
    lines += _response_emotion_protocol(all_metrics, repeated_max_share)
    lines += _emotion_perception_protocol(all_metrics)
    lines += [f"- {note}" for note in notes]
    if epitome_metrics:
        lines.append("- EPITOME classifiers (test split of the Reddit annotations): " + "; ".join(
            f"{m} acc {v['accuracy']:.3f} / macro-F1 {v['macro_f1']:.3f} / IOU-F1 {v['iou_f1']:.3f}"
            for m, v in epitome_metrics.items()))
    lines += ["", "## Command", "", "```bash", command, "```", ""]
    if len(runs) > 1:
        lines += summary_section(corpus, runs, test_sets, mechanisms, runs_metrics, pooled or {})
    for run in runs:
        split, seed = run
        lines += [f"## Run: {split}, seed {seed}", ""]
        for test_set in test_sets:
            lines += [f"### Test set: {test_set} ({_run_name(run)})", ""]
            metrics = runs_metrics.get(run, {}).get(test_set)
            scores_dir = Path(scores_root) / str(split) / f"seed{seed}"
            if metrics is None:
                lines += [(f"No scores for {test_set}: {scores_dir / test_set / 'metrics.json'} does not exist "
                          "(run stage 6 scoring, `rellm.bin.score`, for this test set)."), ""]
                continue
            if not metrics["systems"]:
                lines += ["No system had outputs for this test set:", ""]
                lines += [f"- {s}: {why}" for s, why in metrics.get("missing_systems", {}).items()] + [""]
                continue
            lines += run_section(corpus, metrics, mechanisms, repeated_max_share, example_max_chars)
            plots = copy_plots(scores_dir, test_set, figures_root / f"{split}_seed{seed}")
            if plots:
                lines += ["Figures:", ""]
                lines += [f"![{p.stem}]({os.path.relpath(p, output.parent)})" for p in plots]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run_section(corpus, metrics, mechanisms, repeated_max_share, example_max_chars):
    """One scored test set of one run: the table, what is n/a and why, overlap, comparisons, paper figures, more."""
    lines = results_table(metrics, mechanisms, repeated_max_share) + [""]
    for system, why in metrics.get("missing_systems", {}).items():
        lines.append(f"- {_label(system)} is missing: {why}")
    lines += overlap_lines(metrics)
    lines += not_available_lines(metrics)
    lines += _response_emotion_notes(metrics)
    lines += improvement_lines(metrics, mechanisms)
    paper = paper_comparison(corpus, ours_from_metrics(metrics))
    if paper:
        lines += [""] + paper
    lines += ["", _empathy_by_ser_table(metrics, mechanisms), "", _per_emotion_table(metrics, mechanisms), ""]
    lines += _repeated_table(metrics)
    lines += _examples_section(metrics, example_max_chars)
    return lines


def _mean_sd_cell(entry, scale, digits):
    if not entry or entry.get("mean") is None:
        return "–"
    text = f"{entry['mean'] * scale:.{digits}f}"
    if entry.get("sd") is not None:
        text += f" ± {entry['sd'] * scale:.{digits}f}"
    return text + f" ({entry['n']})"


def summary_table(summary, mechanisms):
    """Markdown rows: mean ± sd (n runs) per system and figure, the teacher's row last."""
    columns = [(m, (m, 1, 3)) for m in mechanisms] + list(figure_columns().items())
    lines = ["| system | " + " | ".join(title for _, (title, _, _) in columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    systems = ordered([s for s in summary if s != TEACHER]) + ([TEACHER] if TEACHER in summary else [])
    for system in systems:
        cells = [_mean_sd_cell(summary[system].get(key), scale, digits) for key, (_, scale, digits) in columns]
        lines.append(f"| {_label(system)} | " + " | ".join(cells) + " |")
    return lines


def _pooled_lines(pooled, mechanisms):
    lines = []
    reference = pooled.get("reference_system") or "rellm"
    for baseline, comp in pooled.get("comparisons", {}).items():
        parts = []
        for m in mechanisms:
            c = comp["empathy"].get(m)
            if c:
                boot = c["bootstrap"]
                parts.append(f"{m} {c['reference_mean']:.3f} vs {c['baseline_mean']:.3f} ({c['n_pairs']} pairs; "
                             f"Wilcoxon p={c['wilcoxon']['p_value']:.3g}; 95% CI of the difference "
                             f"[{boot['ci_low']:+.3f}, {boot['ci_high']:+.3f}])")
        for key, what in (("ser", "SER answers right"), ("response_emotion", "response emotion right")):
            c = comp.get(key)
            if c:
                parts.append(f"{what} {c['accuracy_reference'] * 100:.1f}% vs {c['accuracy_baseline'] * 100:.1f}% "
                             f"({c['n_pairs']} pairs; McNemar p={c['mcnemar']['p_value']:.3g})")
        for metric in registered_metrics():
            c = comp.get(metric.name)
            if c:
                parts.append(f"{metric.what} {_shown(metric, c['reference_mean'])} vs "
                             f"{_shown(metric, c['baseline_mean'])} ({c['n_pairs']} pairs; Wilcoxon "
                             f"p={c['wilcoxon']['p_value']:.3g})")
        if parts:
            lines.append(f"- {_label(reference)} vs {short_name(baseline)}, pairs of {comp['n_runs']} runs pooled:")
            lines += [f"  - {p}" for p in parts]
    return lines


def summary_section(corpus, runs, test_sets, mechanisms, runs_metrics, pooled):
    """``## Summary over N runs``: per test set, mean ± sd and n of every figure, the runs whose test set overlaps a
    system's training data (and the summary without them), significance on the pooled pairs, the paper's figures."""
    lines = [f"## Summary over {len(runs)} runs", "",
             (f"Runs: {', '.join(_run_name(r) for r in runs)}. Each cell: mean ± sample sd over the runs (n runs "
              "that have the figure). Significance: RE-LLM against each baseline on the per-utterance pairs of all "
              "runs pooled (Wilcoxon on levels and word recalls, McNemar on right/wrong); an utterance scored in k "
              "runs gives k pairs, so read the p-values as a summary of the runs, not as independent evidence. "
              "Written to summary.json and pooled_comparisons.json beside the scores."), ""]
    for test_set in test_sets:
        summary = summarise(runs_metrics, test_set, mechanisms)
        if not summary:
            continue
        lines += [f"### Test set: {test_set} (all runs)", ""] + summary_table(summary, mechanisms) + [""]
        overlap = overlapping_runs(runs_metrics, test_set)
        if overlap:
            lines.append("Runs whose test set overlaps a system's training data (docs/datasets.md#training-data-of-"
                         "the-imported-checkpoints):")
            lines.append("")
            for run, systems in sorted(overlap.items()):
                for system, why in systems.items():
                    lines.append(f"- {_run_name(run)}: {_label(system)}: {why}")
            lines.append("")
            clean = summarise(runs_metrics, test_set, mechanisms, exclude=set(overlap))
            if clean:
                kept = [r for r in runs if r not in overlap and test_set in runs_metrics.get(r, {})]
                lines += [f"Without those runs ({', '.join(_run_name(r) for r in kept)}):", ""]
                lines += summary_table(clean, mechanisms) + [""]
            else:
                lines += ["Every run overlaps: no summary without them.", ""]
        lines += _pooled_lines(pooled.get(test_set) or {}, mechanisms)
        reference = next((m.get("reference_system") for by in runs_metrics.values() for m in by.values()), "rellm")
        means = {s: {k: v["mean"] for k, v in figures.items()} for s, figures in summary.items()}
        paper = paper_comparison(corpus, ours_from_summary(means, reference))
        if paper:
            lines += ["", *(line.replace("this run's", "the mean over the runs", 1) for line in paper)]
        lines.append("")
    return lines


def _empathy_by_ser_table(metrics, mechanisms):
    rows = ["Empathy by SER correctness (mean level when the system named the emotion right / wrong; n right/wrong):",
            "", "| system | " + " | ".join(mechanisms) + " | n |", "|" + "---|" * (len(mechanisms) + 2)]
    any_row = False
    for system, label in _rows(metrics):
        m = metrics["systems"].get(system)
        if not m or not m["empathy_by_ser"]:
            continue
        any_row = True
        by = m["empathy_by_ser"]
        cells = [f"{_fmt(by[x]['correct']['mean'], digits=2)} / {_fmt(by[x]['wrong']['mean'], digits=2)}"
                 for x in mechanisms]
        first = by[mechanisms[0]]
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {first['correct']['n']}/{first['wrong']['n']} |")
    return "\n".join(rows) if any_row else ""


def _per_emotion_table(metrics, mechanisms):
    """Mean levels (and SER recall) per reference emotion and system."""
    systems = [(s, label) for s, label in _rows(metrics) if s in metrics["systems"]]
    emotions = []
    for s, _ in systems:
        emotions += [e for e in metrics["systems"][s]["per_emotion"] if e not in emotions]
    if not emotions:
        return ""
    rows = [(f"Per emotion (mean {' / '.join(mechanisms)} level; SER recall in %; resp. = response-emotion recall "
            "in %):"), "",
            "| emotion | n | " + " | ".join(label for _, label in systems) + " |", "|" + "---|" * (len(systems) + 2)]
    for emotion in emotions:
        cells, n = [], 0
        for system, _ in systems:
            entry = metrics["systems"][system]["per_emotion"].get(emotion)
            if entry is None:
                cells.append("–")
                continue
            n = entry["n"]
            text = " / ".join(_fmt(entry.get(m), digits=2) for m in mechanisms)
            if entry.get("ser_recall") is not None:
                text += f"; {entry['ser_recall'] * 100:.0f}%"
            if entry.get("response_emotion_recall") is not None:
                text += f"; resp. {entry['response_emotion_recall'] * 100:.0f}%"
            cells.append(text)
        rows.append(f"| {emotion} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _emotion_perception_protocol(all_metrics):
    """What hears the emotion, for reference: the stage-2a emotion encoder and the prosody baseline."""
    lines = []
    for test_set, metrics in all_metrics.items():
        section = metrics.get("emotion_perception") or {}
        encoder = section.get("emotion_encoder")
        if encoder and not lines:
            v = encoder["valid"]
            lines.append(f"- emotion encoder (stage 2a, `{encoder['folder']}`, best of its epochs by valid score): "
                         f"valid UA {v['ua'] * 100:.1f}%, valid CCC arousal / valence / dominance "
                         f"{v['ccc_arousal']:.2f} / {v['ccc_valence']:.2f} / {v['ccc_dominance']:.2f}")
        baseline = section.get("prosody_baseline")
        if baseline and "missing" in baseline:
            lines.append(f"- prosody baseline ({test_set}): not computed ({baseline['missing']})")
        elif baseline:
            figures = ", ".join(f"{name} UA {r['ua'] * 100:.1f}% (n={r['n']})" for name, r in baseline.items()
                                if isinstance(r, dict) and r.get("ua") is not None)
            lines.append(f"- prosody baseline ({test_set}): {baseline['model']} on {len(baseline['features'])} "
                         f"statistics ({', '.join(baseline['features'])}; `rellm.scoring.prosody_baseline`), trained "
                         f"on {baseline['n_train']} train utterances: {figures}. How far the styles overlap in "
                         "simple prosody: the reference for the emotion encoder and the SER columns")
    return lines


def _response_emotion_protocol(all_metrics, repeated_max_share):
    """Protocol lines of the response-emotion metric and the repeated-response check."""
    lines = [
        ("- response emotion (our addition, not the paper's metric): a TF-IDF + logistic-regression text classifier "
         "(`rellm.scoring.response_emotion`, options in conf/score.yaml), trained on the teacher's expected responses "
         "of the training set, reads which emotion each response was written for; \"resp. emotion UA\" is its "
         "unweighted accuracy against the utterance's emotion (chance = 1 / number of classes; an empty response "
         "counts as wrong). The paper's claim rests on the response changing with the heard emotion; where the "
         "emotion lives only in the prosody (mini: every sentence in all five styles) neither EPITOME nor SER UA "
         "shows that. Compared like SER UA (McNemar marks, bootstrap CIs below the table). Reference row "
         "\"teacher (expected responses)\": the teacher's own responses to the test utterances given their true "
         "emotion (stage 3 on the test set, never used for training): what perfect emotion perception plus the "
         "teacher gives")]
    for metrics in all_metrics.values():
        classifier = (metrics.get("response_emotion") or {}).get("classifier")
        if classifier:
            cv = classifier.get("cv")
            cv_text = (f"; its {cv['n_splits']}-fold cross-validated UA on them, folds grouped by transcript (no "
                       f"sentence in both), is {cv['ua'] * 100:.1f}%" if cv else "; too few sentences to cross-validate")
            lines.append(f"- response-emotion classifier: trained on {classifier['n_train']} teacher responses to "
                         f"{classifier['n_train_sentences']} training sentences{cv_text}")
            break
    lines += [f"- {metric.describe}" for metric in registered_metrics() if metric.describe]
    target = f"; ✗ = above the {repeated_max_share * 100:.0f}% target" if repeated_max_share is not None else ""
    lines.append("- same response (%): share of the test utterances given the system's most frequent response "
                 f"(whitespace and case ignored){target}; more repetition figures below the table")
    return lines


def _response_emotion_notes(metrics):
    section = metrics.get("response_emotion")
    if not section:
        return [("- response-emotion UA not measured: these scores predate it (re-score with "
                "--score_args --overwrite=true)")]
    lines = []
    if section.get("missing"):
        lines.append(f"- response-emotion UA not measured: {section['missing']}")
    elif section.get("teacher_missing"):
        lines.append(f"- no teacher reference row: {section['teacher_missing']}")
    return lines


def _repeated_table(metrics):
    """Repeated responses per system: any repeat, repeats across sentences, the most frequent response."""
    rows = [(label, metrics["systems"][s].get("distinct_responses")) for s, label in _rows(metrics)
            if s in metrics["systems"]]
    teacher = (metrics.get("response_emotion") or {}).get("teacher")
    if teacher:
        rows.append((TEACHER_LABEL, teacher.get("distinct_responses")))
    rows = [(label, d) for label, d in rows if d]
    if not rows:
        return []
    lines = [("Repeated responses (% of the test utterances whose response is identical to another's; across "
             "sentences: to the response to another sentence; most frequent: the single most given response):"), "",
             "| system | distinct responses | repeated (%) | repeated across sentences (%) | most frequent (%) |",
             "|---|---|---|---|---|"]
    for label, d in rows:
        lines.append(f"| {label} | {d['n_distinct']} of {d['n']} | {d['share_identical'] * 100:.1f} | "
                     f"{d['share_identical_other_sentence'] * 100:.1f} | {d['most_common_share'] * 100:.1f}: "
                     f"\"{_cell_text(d['most_common'], 60)}\" |")
    return lines + [""]


def _cell_text(text, max_chars):
    """A response as one Markdown table cell: one line, pipes escaped, cut at a word boundary with "…"."""
    if text is None:
        return "–"
    text = " ".join(str(text).split())
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]
        text = cut.rstrip(" ,.;:") + " …"
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") or "(empty)"


def _examples_section(metrics, max_chars):
    """Each example sentence's responses in all five emotions, one column per system (and the teacher)."""
    examples = metrics.get("examples") or []
    if not examples:
        return []
    lines = [(f"Example responses (the first {len(examples)} test sentence(s) in sorted order with all five emotions; "
             f"responses cut after {max_chars} characters, marked …; in brackets the emotion the response-emotion "
             "classifier reads):"), ""]
    for example in examples:
        names = list(example["rows"][0]["responses"])
        labels = [TEACHER_LABEL if n == "teacher" else _label(n) for n in names]
        lines += [f"\"{_cell_text(example['transcript'], 200)}\"", "",
                  "| emotion | " + " | ".join(labels) + " |", "|" + "---|" * (len(names) + 1)]
        for row in example["rows"]:
            cells = []
            for name in names:
                text = _cell_text(row["responses"].get(name), max_chars)
                pred = row.get("predicted", {}).get(name)
                cells.append(f"{text} [{pred}]" if pred else text)
            lines.append(f"| {row['emotion']} (`{row['utt_id']}`) | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
