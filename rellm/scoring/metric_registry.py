"""The per-utterance figures stage 6 adds to the paper's (EPITOME levels, SER UA): one record each, one line below.

A metric is a number per response (``per_utterance(record)``: the stage-5 record, with ``transcript``,
``response``, ``emotion``, ...; ``None`` where it has none). Stage 6 then, for every metric listed in
``METRIC_MODULES``, without further code:

- puts each system's (and the teacher row's) section ``summarise(records)`` into ``metrics.json``
  (``systems.<s>.<name>``, ``teacher.<name>``; its ``headline`` key is the figure) and says why it is n/a;
- writes the per-utterance values into ``per_utt.jsonl`` (``systems.<s>.<utterance_key>``);
- compares the reference system with each baseline on the paired values (Wilcoxon signed-rank and a paired
  bootstrap interval: ``comparisons.<b>.<name>``), per run and pooled over runs;
- shows a RESULTS.md column (``column``, with the significance marks), a sentence per comparison, a protocol
  bullet (``describe``), and the mean ± sd over runs in ``summary.json``;
- fingerprints ``settings`` into the scores' done marker, so that scores made with other settings are redone.

Adding one: a module that defines ``METRIC = Metric(...)`` and its name in ``METRIC_MODULES`` (DEVELOPING.md#adding-
a-metric; ``rellm.scoring.response_words`` is the worked example).
"""
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Modules that define METRIC, in the order of RESULTS.md's columns (after the response-emotion UA).
METRIC_MODULES = (
    "rellm.scoring.response_words",
)


@dataclass(frozen=True)
class Metric:
    name: str                      # key in metrics.json, summary.json and pooled_comparisons.json
    what: str                      # in sentences and logs ("response words")
    column: str                    # RESULTS.md's column title ("resp. words (%)")
    per_utterance: Callable        # stage-5 record -> float, or None where the utterance has no figure
    utterance_key: str             # per_utt.jsonl key of the per-utterance value
    summarise: Callable = None     # records {utt_id: record} -> the section of metrics.json (default: mean_section)
    headline: str = "mean"         # the section's key holding the figure
    scale: float = 1.0             # shown as value * scale (100: a share shown in %)
    digits: int = 3
    cell: Callable = None          # section -> RESULTS.md cell text (default: the headline, "–" without one)
    short: str = None              # in the "n/a:" lines (default: the column title)
    unit: str = ""                 # after the two shares in a comparison sentence (" of the transcript's words")
    describe: str = ""             # RESULTS.md protocol bullet
    not_available: str = "no utterance has a value"
    settings: dict = field(default_factory=dict)  # what changes the figure: part of the scores' fingerprint

    def section(self, records):
        """The system's ``metrics.json`` section (``None`` without records)."""
        return (self.summarise or mean_section(self))(records)

    def figure(self, section):
        """The headline figure of a section, ``None`` when absent or NaN."""
        value = (section or {}).get(self.headline)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
            return None
        return value

    def table_cell(self, section):
        if self.cell is not None:
            return self.cell(section)
        value = (section or {}).get(self.headline)
        if value is None:
            return "–"
        return "n/a" if math.isnan(value) else f"{value * self.scale:.{self.digits}f}"

    def values(self, records, utterances):
        """``{utt_id: value or None}`` of ``utterances``."""
        return {u: self.per_utterance(records[u]) for u in utterances}

    def paired(self, reference, baseline, common):
        """The values of two systems on the ``common`` utterances where both have one: ``(a, b)`` arrays."""
        a, b = [], []
        for u in common:
            va, vb = self.per_utterance(reference[u]), self.per_utterance(baseline[u])
            if va is not None and vb is not None:
                a.append(va)
                b.append(vb)
        return np.array(a, dtype=float), np.array(b, dtype=float)

    def log_text(self, section):
        value = self.figure(section)
        if value is None:
            return ""
        unit = "%" if self.scale == 100 else ""
        return f", {self.what} {value * self.scale:.{self.digits}f}{unit}"


def mean_section(metric):
    """The default section: ``{n, n_scored, mean}`` (the mean over the utterances with a value)."""

    def summarise(records):
        if not records:
            return None
        values = [v for v in (metric.per_utterance(r) for r in records.values()) if v is not None]
        return {"n": len(records), "n_scored": len(values), "mean": float(np.mean(values)) if values else None}

    return summarise


def metrics():
    """The listed metrics, in column order."""
    return [importlib.import_module(module).METRIC for module in METRIC_MODULES]
