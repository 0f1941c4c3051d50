"""The recipe's RESULTS.md: environment, protocol, command, paper-style table, paper figures, plots.

Rows: text-only LLM, BLSP-Emo baseline, RE-LLM; columns ER, IP, EX (mean
EPITOME level, 0..2) and UA, WA (%). Under the table, RE-LLM's relative
change against each baseline is written the way the paper writes it
("EX +35.4% vs text-only"), with Wilcoxon / McNemar significance marks.
"""
import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from rellm.scoring.significance import significance_mark
from rellm.utils.io import read_json

SYSTEM_ROWS = (("text_only", "text-only LLM"), ("blsp_emo", "BLSP-Emo baseline"), ("rellm", "RE-LLM"))
SHORT_NAMES = {"text_only": "text-only", "blsp_emo": "BLSP-Emo"}
PACKAGES = ("torch", "torchaudio", "transformers", "speechbrain", "peft", "numpy", "scipy", "scikit-learn")

# docs/paper_results.md: [ABS] relative gains from the abstract, [SUM] absolute RE-LLM numbers (leaderboard).
PAPER_FIGURES = {
    "iemocap": {
        "absolute": {"ER": 1.856, "UA": 76.6},
        "relative": {"text_only": {"ER": "slight", "EX": "+35.42%"},
                     "blsp_emo": {"ER": "slight", "EX": "+3.91%", "UA": "+5.4"}},
    },
    "esd": {
        "absolute": {"ER": 1.851, "UA": 98.9},
        "relative": {"text_only": {"ER": "+14.79%", "EX": "+139.28%"},
                     "blsp_emo": {"ER": "+6.76%", "EX": "+9.83%", "UA": "+2.3"}},
    },
    "msp_podcast": {
        "absolute": {"ER": 1.889, "UA": 66.4},
        "relative": {"text_only": {"EX": "+60.95%"}, "blsp_emo": {"EX": "+22.64%", "UA": "+6.9"}},
    },
}


# What stage 6 itself rewrites in a checkout: committed results must not make the run look "dirty".
RESULT_PATHS = ("egs/*/RESULTS*.md", "egs/*/results_figures/**")


def git_revision(repo_dir):
    """``(hash, dirty)`` of the code checkout, ``("unknown", None)`` outside git; ``dirty``: a tracked file other
    than the recipes' own results (``RESULT_PATHS``) differs from the commit."""
    try:
        rev = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=20).stdout.strip()
        excluded = [f":(exclude,glob){p}" for p in RESULT_PATHS]
        status = subprocess.run(["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no",
                                 "--", ".", *excluded],
                                capture_output=True, text=True, check=True, timeout=20).stdout
        return rev, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


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
    rev, dirty = git_revision(Path(__file__).resolve().parents[2])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": rev + (" (with uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "packages": versions,
        "device": device,
    }


def _fmt(value, scale=1.0, digits=3):
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _relative(value):
    return "n/a (baseline 0)" if value is None else f"{value:+.1f}%"


TEACHER_LABEL = "teacher (expected responses)"


def results_table(metrics, mechanisms, repeated_max_share=None):
    """Markdown rows of the paper-style table for one test set (missing systems get a marked row).

    Besides the paper's columns (our additions): the response-emotion UA, the share of the transcript's content
    words the responses repeat (and its chance level), the share of the test utterances given the system's single
    most frequent response (marked ✗ above ``repeated_max_share``), and a last row for the teacher's own expected
    responses when stage 3 produced them for this test set.
    """
    header = ("| system | " + " | ".join(mechanisms)
              + " | UA (%) | WA (%) | SER head UA (%) | resp. emotion UA (%) | resp. words (%) | same response (%) | n |")
    lines = [header, "|" + "---|" * (len(mechanisms) + 8)]
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
        if comp.get("response_words"):
            c = comp["response_words"]
            marks_against.setdefault("words", []).append(
                (baseline, significance_mark(c["wilcoxon"]["p_value"]), c["reference_mean"] < c["baseline_mean"]))
    for system, label in _rows(metrics):
        m = metrics["systems"].get(system)
        if m is None:
            why = metrics.get("missing_systems", {}).get(system, "not scored")
            lines.append(f"| {label} | " + " | ".join(["missing"] * (len(mechanisms) + 6)) + " | – |")
            lines[-1] += f" <!-- {why} -->"
            continue
        cells = []
        for mech in mechanisms:
            cell = _fmt(m["empathy"][mech]["mean"])
            if system == reference:
                cell += _mark_suffix(marks_against.get(mech, []))
            cells.append(cell)
        ser = m["ser"]
        ua = _fmt(ser["ua"], 100, 1) if ser else "–"
        if ser and system == reference:
            ua += _mark_suffix(marks_against.get("UA", []))
        resp = m.get("response_emotion")
        resp_ua = _fmt(resp["ua"], 100, 1) if resp else "–"
        if resp and system == reference:
            resp_ua += _mark_suffix(marks_against.get("RE", []))
        head = m.get("ser_head")
        words = _words_cell(m.get("response_words"))
        if words != "–" and system == reference:
            words += _mark_suffix(marks_against.get("words", []))
        cells += [ua, _fmt(ser["wa"], 100, 1) if ser else "–", _fmt(head["ua"], 100, 1) if head else "–", resp_ua,
                  words, _repeated_cell(m.get("distinct_responses"), repeated_max_share), str(m["n"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    teacher = (metrics.get("response_emotion") or {}).get("teacher")
    if teacher:
        cells = ["–"] * (len(mechanisms) + 3) + [_fmt(teacher["response_emotion"]["ua"], 100, 1),
                                                 _words_cell(teacher.get("response_words")),
                                                 _repeated_cell(teacher["distinct_responses"], repeated_max_share),
                                                 str(teacher["n"])]
        lines.append(f"| {TEACHER_LABEL} | " + " | ".join(cells) + " |")
    return lines


def _points_line(what, baseline_name, reference, baseline, unit, test, boot):
    """"response words -40.1 points vs text-only (0.4% vs 40.5% ...; Wilcoxon p=...; 95% CI ...)": two shares."""
    return (f"{what} {(reference - baseline) * 100:+.1f} points vs {baseline_name} ({reference * 100:.1f}% vs "
            f"{baseline * 100:.1f}%{unit}; {test}; 95% CI of the difference "
            f"[{boot['ci_low'] * 100:+.1f}, {boot['ci_high'] * 100:+.1f}] points)")


def _words_cell(section):
    """``38.3 (1.5)``: the share of the transcript's content words the responses repeat, and in brackets the
    same against the other test sentences' words (what ignoring the words gets)."""
    if not section or section.get("recall") is None:
        return "–"
    other = section.get("recall_other_sentences")
    return _fmt(section["recall"], 100, 1) + (f" ({_fmt(other, 100, 1)})" if other is not None else "")


def _repeated_cell(distinct, max_share):
    if not distinct:
        return "–"
    # the check: no response given to more than max_share of the test utterances
    cell = _fmt(distinct["most_common_share"], 100, 1)
    if max_share is not None and distinct["most_common_share"] > max_share:
        cell += " ✗"
    return cell


def _rows(metrics):
    known = [s for s, _ in SYSTEM_ROWS]
    rows = list(SYSTEM_ROWS)
    for system in list(metrics["systems"]) + list(metrics.get("missing_systems", {})):
        if system not in known:
            rows.append((system, system))
            known.append(system)
    present = set(metrics["systems"]) | set(metrics.get("missing_systems", {}))
    return [(s, label) for s, label in rows if s in present]


def _mark_suffix(marks):
    """``<sup>**t</sup><sup>*B↓</sup>``: one mark per baseline (t = text-only, B = BLSP-Emo); ↓ = RE-LLM lower."""
    text = "".join(f"<sup>{mark}{SHORT_NAMES.get(base, base)[0]}{'↓' if worse else ''}</sup>"
                   for base, mark, worse in marks if mark)
    return f" {text}" if text else ""


def improvement_lines(metrics, mechanisms):
    """Sentences such as "EX +35.4% vs text-only (Wilcoxon p=0.003; 95% CI of the difference [0.08, 0.21])"."""
    lines = []
    reference = metrics.get("reference_system", "rellm")
    for baseline, comp in metrics.get("comparisons", {}).items():
        name = SHORT_NAMES.get(baseline, baseline)
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
        if comp.get("response_words"):
            w = comp["response_words"]
            parts.append(_points_line("response words", name, w["reference_mean"], w["baseline_mean"],
                                      " of the transcript's content words", f"Wilcoxon p={w['wilcoxon']['p_value']:.3g}",
                                      w["bootstrap"]))
        if parts:
            lines.append(f"- {_label(reference)} vs {name} on {comp['n_paired']} paired utterances:")
            lines += [f"  - {p}" for p in parts]
    return lines


def _label(system):
    return dict(SYSTEM_ROWS).get(system, system)


def paper_lines(corpus):
    """The paper's published figures for a real corpus (docs/paper_results.md), or nothing."""
    paper = PAPER_FIGURES.get(corpus)
    if not paper:
        return []
    absolute = paper["absolute"]
    lines = [("Published RE-LLM figures for this corpus (docs/paper_results.md; the paper's tables were not "
             "available, so these come from the abstract [ABS] and a leaderboard summary [SUM]):"), "",
             "| source | ER (RE-LLM) | UA (RE-LLM, %) | vs text-only | vs BLSP-Emo |", "|---|---|---|---|---|"]
    rel = paper["relative"]
    lines.append(
        f"| paper | {absolute['ER']:.3f} [SUM] | {absolute['UA']:.1f} [SUM] | "
        + ", ".join(f"{k} {v}" for k, v in rel.get("text_only", {}).items()) + " [ABS] | "
        + ", ".join(f"{k} {v}" for k, v in rel.get("blsp_emo", {}).items()) + " [ABS] |")
    lines += ["", ("The UA gains are given in the abstract without saying whether they are absolute points or "
              "relative percentages; EX absolute values and the baselines' absolute values were not published in "
              "a form we could retrieve. The paper's EPITOME classifiers are RoBERTa models trained on Reddit and "
              "TalkLife; ours are re-trained on the public Reddit portion (encoder above), so compare relative "
              "changes rather than absolute levels.")]
    return lines


def our_relative_summary(metrics, mechanisms):
    """``"EX +35.4%, ER +2.1%"`` for each baseline, to put beside the paper's row."""
    out = {}
    for baseline, comp in metrics.get("comparisons", {}).items():
        parts = [f"{m} {_relative(comp['empathy'][m]['relative_improvement_pct'])}"
                 for m in mechanisms if m in comp["empathy"]]
        if comp.get("ser"):
            parts.append(f"UA {comp['ser']['ua_difference_points']:+.1f}")
        out[baseline] = ", ".join(parts)
    return out


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


def render_results(corpus, split, seed, test_sets, scores_dir, output, command, mechanisms, notes=(),
                   env=None, epitome_metrics=None, example_max_chars=160, repeated_max_share=0.10):
    """The RESULTS.md text; a test set without ``metrics.json`` gets a message instead of a table."""
    env = env or environment()
    output = Path(output)
    figures_dir = output.parent / "results_figures" / f"{split}_seed{seed}"
    lines = [f"# RESULTS: {corpus}", "", "Generated by stage 6 (`rellm.bin.results`); review before committing.", ""]
    lines += ["## Environment", "", "```",
              f"date: {env['date']}", f"git: {env['git']}", f"python: {env['python']}",
              "packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
              f"device: {env['device']}", "```", ""]
    classes, n_test = set(), {}
    all_metrics = {}
    for test_set in test_sets:
        path = Path(scores_dir) / test_set / "metrics.json"
        if path.is_file():
            all_metrics[test_set] = read_json(path)
            for m in all_metrics[test_set]["systems"].values():
                n_test[test_set] = m["n"]
                if m["ser"]:
                    classes |= set(m["ser"]["classes_present"])
                classes |= set(m["per_emotion"])
    from rellm.data.emotions import EMOTIONS

    lines += ["## Protocol", "",
              f"- corpus: {corpus}; split/fold: {split}; seed(s): {seed} (one run)",
              f"- test set(s): {', '.join(f'{t} ({n_test.get(t, 0)} utterances)' for t in test_sets)}",
              (f"- emotion classes present in the reference: {', '.join(e for e in EMOTIONS if e in classes) or 'none'}"
              " (UA averages recall over these; an unparsed SER answer counts as wrong)"),
              ("- UA / WA: SER read from each system's generated answer to the SER question, as in the paper; "
              "SER head UA: the speech systems' 5-way emotion head on the pooled adapter output (trained by step 2's "
              "emotion cross-entropy; stage 5 records its label), a second figure that needs no text generation"),
              ("- empathy: mean EPITOME level (0..2) with seeker post = transcript, response = system response; "
              "classifiers re-trained here on the encoder "
              f"{next((m['epitome']['encoder'] for m in all_metrics.values() if 'encoder' in m.get('epitome', {})), 'unknown')}"
              " (the paper's: roberta-base; see below)"),
              ("- significance: RE-LLM vs each baseline, Wilcoxon signed-rank on per-utterance levels, McNemar (exact) "
              "on SER correctness; marks <sup>*t</sup>/<sup>*B</sup> = p<0.05 against text-only/BLSP-Emo "
              "(** p<0.01, *** p<0.001; ↓ = RE-LLM significantly lower); paired bootstrap 95% CIs below the table")]
    lines += _response_emotion_protocol(all_metrics, repeated_max_share)
    lines += _emotion_perception_protocol(all_metrics)
    lines += [f"- {note}" for note in notes]
    if epitome_metrics:
        lines.append("- EPITOME classifiers (test split of the Reddit annotations): " + "; ".join(
            f"{m} acc {v['accuracy']:.3f} / macro-F1 {v['macro_f1']:.3f} / IOU-F1 {v['iou_f1']:.3f}"
            for m, v in epitome_metrics.items()))
    lines += ["", "## Command", "", "```bash", command, "```", ""]
    for test_set in test_sets:
        lines += [f"## Test set: {test_set}", ""]
        metrics = all_metrics.get(test_set)
        if metrics is None:
            lines += [(f"No scores for {test_set}: {Path(scores_dir) / test_set / 'metrics.json'} does not exist "
                      "(run stage 6 scoring, `rellm.bin.score`, for this test set)."), ""]
            continue
        if not metrics["systems"]:
            lines += ["No system had outputs for this test set:", ""]
            lines += [f"- {s}: {why}" for s, why in metrics.get("missing_systems", {}).items()] + [""]
            continue
        lines += results_table(metrics, mechanisms, repeated_max_share) + [""]
        for system, why in metrics.get("missing_systems", {}).items():
            lines.append(f"- {_label(system)} is missing: {why}")
        lines += _response_emotion_notes(metrics)
        lines += improvement_lines(metrics, mechanisms)
        ours = our_relative_summary(metrics, mechanisms)
        paper = paper_lines(corpus)
        if paper:
            lines += [""] + paper
            lines += ["", "This run, RE-LLM relative to the baselines: "
                      + "; ".join(f"{v} vs {SHORT_NAMES.get(b, b)}" for b, v in ours.items())]
        lines += ["", _empathy_by_ser_table(metrics, mechanisms), "", _per_emotion_table(metrics, mechanisms), ""]
        lines += _repeated_table(metrics)
        lines += _examples_section(metrics, example_max_chars)
        plots = copy_plots(scores_dir, test_set, figures_dir)
        if plots:
            lines += ["Figures:", ""]
            lines += [f"![{p.stem}]({os.path.relpath(p, output.parent)})" for p in plots]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


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
    lines.append(
        "- response words (our addition, `rellm.scoring.response_words`): \"resp. words\" is the share of the "
        "transcript's content words (lower-cased words of three or more characters, a fixed list of English "
        "function words removed) that occur in the response, averaged over the test utterances; in brackets the "
        "same share of the *other* test sentences' content words, what a response that ignores the words gets. "
        "Response emotion asks whether the reply follows the heard emotion, this whether it follows the heard words "
        "(BLSP-Emo's first training step aligns the speech with its transcript so that the LLM reads it); a "
        "speech-LLM that hears the emotion but not the words can give only one reply per emotion, which the same "
        "response column then shows. Exact words are counted, so a paraphrase scores lower. Compared like the "
        "EPITOME levels (Wilcoxon marks, bootstrap CIs below the table)")
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
