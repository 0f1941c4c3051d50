"""Paired tests agree with scipy; the bootstrap CI covers the true difference on synthetic data."""
import math

import numpy as np
import pytest
from scipy import stats

from rellm.scoring.significance import (
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_bootstrap_statistic,
    significance_mark,
    wilcoxon_signed_rank,
)


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_matches_scipy_on_levels(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, size=150)
    b = np.clip(a - rng.integers(-1, 2, size=150) * (rng.random(150) < 0.4), 0, 2)
    ours = wilcoxon_signed_rank(a, b)
    ref = stats.wilcoxon(a, b)
    assert ours["p_value"] == pytest.approx(ref.pvalue)
    assert ours["statistic"] == pytest.approx(ref.statistic)
    assert ours["n_nonzero"] == int(np.count_nonzero(a - b))


def test_wilcoxon_identical_samples_give_p_one():
    assert wilcoxon_signed_rank([1, 2, 0], [1, 2, 0])["p_value"] == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_mcnemar_matches_exact_binomial(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(120) < 0.7
    b = rng.random(120) < 0.55
    ours = mcnemar_exact(a, b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    ref = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert (ours["only_a_correct"], ours["only_b_correct"]) == (only_a, only_b)
    assert ours["p_value"] == pytest.approx(ref)


def test_mcnemar_hand_made():
    # 1 discordant pair each way: p = 1; 6 vs 0: p = 2 / 2**6
    assert mcnemar_exact([1, 0, 1], [0, 1, 1])["p_value"] == 1.0
    assert mcnemar_exact([1] * 6 + [0], [0] * 6 + [0])["p_value"] == pytest.approx(2 / 64)


def test_bootstrap_ci_contains_true_difference():
    rng = np.random.default_rng(0)
    n, true_diff = 400, 0.3
    base = rng.normal(1.0, 0.5, size=n)
    a = base + true_diff + rng.normal(0, 0.4, size=n)
    ci = paired_bootstrap_ci(a, base, n_resamples=4000, seed=1)
    assert ci["ci_low"] < true_diff < ci["ci_high"]
    assert ci["ci_low"] > 0  # the effect is clearly there
    assert ci["difference"] == pytest.approx(a.mean() - base.mean())
    assert ci["seed"] == 1 and ci["n_resamples"] == 4000


def test_bootstrap_ci_coverage_is_close_to_nominal():
    covered = 0
    for k in range(60):
        rng = np.random.default_rng(100 + k)
        b = rng.integers(0, 3, size=200).astype(float)
        a = np.clip(b + rng.choice([-1, 0, 1], p=[0.2, 0.5, 0.3], size=200), 0, 2)
        ci = paired_bootstrap_ci(a, b, n_resamples=1000, seed=k)
        # E[a - b] per b: b=0 -> +0.3 (a -1 step is clipped), b=1 -> 0.3 - 0.2, b=2 -> -0.2 (a +1 step is clipped)
        truth = (0.3 + 0.1 - 0.2) / 3
        covered += ci["ci_low"] <= truth <= ci["ci_high"]
    assert 0.85 <= covered / 60 <= 1.0


def test_bootstrap_is_reproducible_with_its_seed():
    a, b = np.arange(50) % 3, (np.arange(50) + 1) % 3
    assert paired_bootstrap_ci(a, b, seed=5) == paired_bootstrap_ci(a, b, seed=5)


def test_generic_bootstrap_statistic_matches_mean_fast_path():
    rng = np.random.default_rng(3)
    a, b = rng.random(80), rng.random(80)
    generic = paired_bootstrap_statistic(80, lambda i: a[i].mean() - b[i].mean(), n_resamples=500, seed=2)
    assert generic["difference"] == pytest.approx(a.mean() - b.mean())
    assert generic["ci_low"] < generic["difference"] < generic["ci_high"]


def test_significance_marks():
    assert [significance_mark(p) for p in (0.2, 0.04, 0.005, 0.0001, math.nan)] == ["", "*", "**", "***", ""]
