"""The paper's published figures per corpus (docs/paper_results.md), set beside this run's in RESULTS.md.

Two sources, tagged on every figure: [ABS] the abstract of the RE-LLM paper (arXiv 2602.10716 v1), which gives
relative gains of RE-LLM over each baseline; [SUM] a public results leaderboard (wizwand.com) with RE-LLM's absolute
ER and SER UA, secondary. EX absolute values and every baseline's absolute values were not published in a form
we could retrieve: they show as "not published". Our side of each row is this run's figure (or the mean over the
scored runs), computed the same way: RE-LLM's relative change of the mean level, and UA in points with the
relative change in brackets (the abstract does not say which of the two its UA gains are).
"""
from rellm.systems import short_name

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
SOURCES = ("[ABS] the abstract of the RE-LLM paper (arXiv 2602.10716 v1); [SUM] a public results leaderboard "
           "(wizwand.com), secondary; both in docs/paper_results.md, to be replaced by the paper's tables when "
           "available")
# what the paper reports (docs/paper_results.md#relative-gains): ER and EX, UA against BLSP-Emo only
PAPER_METRICS = ("ER", "EX")


def _relative(value):
    return "n/a (baseline 0)" if value is None else f"{value:+.1f}%"


def paper_comparison(corpus, ours):
    """Markdown lines: the paper's figures for ``corpus`` beside ``ours``, or ``[]`` for a corpus the paper did not use.

    ``ours``: ``{"absolute": {"ER": level, "EX": level, "UA": fraction}`` (RE-LLM's), ``"gains": {baseline: {"ER":
    relative %, "EX": relative %, "UA": (points, relative %)}}}``; a missing value shows as "–".
    """
    paper = PAPER_FIGURES.get(corpus)
    if not paper:
        return []
    absolute, gains = ours.get("absolute") or {}, ours.get("gains") or {}
    rows = ["| figure | paper | this run |", "|---|---|---|"]
    for metric in (*PAPER_METRICS, "UA"):
        published = paper["absolute"].get(metric)
        mine = absolute.get(metric)
        unit = " (%)" if metric == "UA" else " (mean level)"
        if metric == "UA":
            paper_cell = f"{published:.1f} [SUM]" if published is not None else "not published"
            mine_cell = f"{mine * 100:.1f}" if mine is not None else "–"
        else:
            paper_cell = f"{published:.3f} [SUM]" if published is not None else "not published"
            mine_cell = f"{mine:.3f}" if mine is not None else "–"
        rows.append(f"| RE-LLM {metric}{unit} | {paper_cell} | {mine_cell} |")
    for baseline in ("text_only", "blsp_emo"):
        for metric in (*PAPER_METRICS, "UA"):
            if metric == "UA" and baseline == "text_only":
                continue  # the paper compares UA with BLSP-Emo only: the text-only LLM does not hear
            published = paper["relative"].get(baseline, {}).get(metric)
            paper_cell = f"{published} [ABS]" if published else "not published"
            if metric == "UA" and published:
                paper_cell = f"{published} (points or %: not stated) [ABS]"
            ours_for = gains.get(baseline) or {}
            value = ours_for.get(metric)
            if metric not in ours_for:  # not measured in this run (no such baseline, no SER answers)
                mine_cell = "–"
            elif metric == "UA":
                relative = f"{value[1]:+.1f}%" if value[1] is not None else "relative n/a: baseline 0"
                mine_cell = f"{value[0]:+.1f} points ({relative})"
            else:
                mine_cell = _relative(value)  # None: the baseline's mean is 0
            rows.append(f"| RE-LLM {metric} vs {short_name(baseline)} | {paper_cell} | {mine_cell} |")
    return [("Published RE-LLM figures for this corpus beside this run's (the paper's tables were not available; "
             f"sources: {SOURCES}):"), "", *rows, "",
            ("The paper's EPITOME classifiers are RoBERTa models adapted to Reddit and TalkLife; ours are re-trained "
             "on the public Reddit portion (encoder above), so compare the relative changes rather than the absolute "
             "levels.")]


def ours_from_metrics(metrics):
    """``ours`` for ``paper_comparison`` from one scored test set's ``metrics.json``."""
    reference = metrics.get("reference_system", "rellm")
    m = metrics.get("systems", {}).get(reference)
    if not m:
        return {}
    absolute = {k: m["empathy"][k]["mean"] for k in PAPER_METRICS if k in m.get("empathy", {})}
    absolute["UA"] = m["ser"]["ua"] if m.get("ser") else None
    gains = {}
    for baseline, comp in metrics.get("comparisons", {}).items():
        g = {k: comp["empathy"][k]["relative_improvement_pct"] for k in PAPER_METRICS if k in comp.get("empathy", {})}
        if comp.get("ser"):
            g["UA"] = (comp["ser"]["ua_difference_points"], comp["ser"]["ua_relative_improvement_pct"])
        gains[baseline] = g
    return {"absolute": absolute, "gains": gains}


def ours_from_summary(means, reference="rellm"):
    """``ours`` from the mean figures over several runs (``{system: {metric: mean}}`` of ``rellm.scoring.summary``)."""
    ref = means.get(reference) or {}
    absolute = {k: ref.get(k) for k in PAPER_METRICS}
    absolute["UA"] = ref.get("ua")
    gains = {}
    for baseline, figures in means.items():
        if baseline == reference:
            continue
        g = {}
        for k in PAPER_METRICS:
            a, b = ref.get(k), figures.get(k)
            if a is not None and b is not None:
                g[k] = (a - b) / b * 100 if b > 0 else None
        a, b = ref.get("ua"), figures.get("ua")
        if a is not None and b is not None:
            g["UA"] = ((a - b) * 100, (a - b) / b * 100 if b > 0 else None)
        gains[baseline] = g
    return {"absolute": absolute, "gains": gains}
