"""Paired significance tests, RE-LLM against a baseline on the same test utterances.

The paper claims "statistically significant gains" without naming a test
(docs/evaluation.md#significance). We report, per metric:
- Wilcoxon signed-rank on the per-utterance EPITOME levels (with 0/1/2 levels
  most differences are 0 or tied: zeros are discarded and scipy then uses the
  normal approximation with its tie correction),
- a paired bootstrap 95 % CI of the mean difference (utterances resampled with
  a recorded seed),
- McNemar's exact test on the per-utterance SER correctness.
"""
import math

import numpy as np
from scipy import stats


def wilcoxon_signed_rank(a, b, zero_method="wilcox"):
    """Two-sided Wilcoxon signed-rank test of ``a - b``: ``{"statistic", "p_value", "n_nonzero"}``.

    All-equal inputs (no non-zero difference) give p = 1 rather than an error.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({len(a)} vs {len(b)})")
    diff = a - b
    n_nonzero = int(np.count_nonzero(diff))
    if n_nonzero == 0:
        return {"statistic": 0.0, "p_value": 1.0, "n_nonzero": 0}
    result = stats.wilcoxon(a, b, zero_method=zero_method, alternative="two-sided")
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue), "n_nonzero": n_nonzero}


def paired_bootstrap_ci(a, b, n_resamples=10000, confidence=0.95, seed=0, statistic=np.mean):
    """Percentile bootstrap CI of ``statistic(a) - statistic(b)`` resampling utterances in pairs.

    Returns ``{"difference", "ci_low", "ci_high", "confidence", "n_resamples", "seed"}``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({len(a)} vs {len(b)})")
    if len(a) == 0:
        raise ValueError("no paired utterances to bootstrap")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    chunk = 1000  # bounds memory at chunk x n indices
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = rng.integers(0, len(a), size=(m, len(a)))
        if statistic is np.mean:
            diffs[start:start + m] = a[idx].mean(axis=1) - b[idx].mean(axis=1)
        else:
            diffs[start:start + m] = [statistic(a[i]) - statistic(b[i]) for i in idx]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return {"difference": float(statistic(a) - statistic(b)), "ci_low": float(low), "ci_high": float(high),
            "confidence": confidence, "n_resamples": int(n_resamples), "seed": int(seed)}


def mcnemar_exact(correct_a, correct_b):
    """McNemar's exact (binomial) test on paired correctness.

    ``b01`` = utterances only ``b`` got right, ``b10`` = only ``a`` got right;
    p = two-sided binomial test of ``b10`` out of ``b10 + b01`` at 0.5.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({len(a)} vs {len(b)})")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        p = 1.0
    else:
        k = min(only_a, only_b)
        # two-sided exact p: twice the lower tail, capped at 1 (the binomial(n, 0.5) is symmetric)
        p = min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p)}


def significance_mark(p_value, levels=((0.001, "***"), (0.01, "**"), (0.05, "*"))):
    """``*`` p<0.05, ``**`` p<0.01, ``***`` p<0.001, else ``""``."""
    if p_value is None or (isinstance(p_value, float) and math.isnan(p_value)):
        return ""
    for threshold, mark in levels:
        if p_value < threshold:
            return mark
    return ""


def paired_bootstrap_statistic(n, difference, n_resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap CI of any paired ``difference(indices)`` (e.g. a UA difference).

    ``difference`` maps an index array over the ``n`` paired utterances to a
    number; it is evaluated on the identity once and on ``n_resamples`` resamples.
    """
    if n == 0:
        raise ValueError("no paired utterances to bootstrap")
    rng = np.random.default_rng(seed)
    diffs = np.array([difference(rng.integers(0, n, size=n)) for _ in range(n_resamples)])
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(diffs, [alpha, 1 - alpha])
    return {"difference": float(difference(np.arange(n))), "ci_low": float(low), "ci_high": float(high),
            "confidence": confidence, "n_resamples": int(n_resamples), "seed": int(seed)}
