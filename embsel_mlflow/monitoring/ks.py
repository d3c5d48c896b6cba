"""Share of drifted dimensions: a two-sample KS test per dimension, corrected for multiple testing."""

from __future__ import annotations

import warnings

import numpy as np

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.monitoring.results import DriftResult

CORRECTIONS = ("fdr_bh", "holm", "bonferroni")


def adjusted_p_values(p_values: np.ndarray, correction: str) -> np.ndarray:
    """Benjamini-Hochberg (``fdr_bh``), Holm or Bonferroni adjusted p-values."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    count = p.size
    if correction == "fdr_bh":
        return false_discovery_control(p, method="bh")
    if correction == "bonferroni":
        return np.minimum(p * count, 1.0)
    if correction == "holm":
        order = np.argsort(p)
        stepped = np.maximum.accumulate(p[order] * (count - np.arange(count)))
        adjusted = np.empty_like(p)
        adjusted[order] = np.minimum(stepped, 1.0)
        return adjusted
    raise ConfigError(
        f"monitor.drift.ks.correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}"
    )


def ks_test(
    reference: np.ndarray, current: np.ndarray, alpha: float, *, correction: str = "fdr_bh"
) -> DriftResult:
    """Statistic: the share of dimensions whose adjusted p < alpha. p-value: the smallest adjusted p.

    With BH that is the Simes test of "no dimension drifted" (valid for independent or positively
    dependent dimensions); with Holm/Bonferroni the family-wise one; either way the window alerts
    at most ``alpha`` of the time without drift.
    """
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        # scipy falls back from the exact to the asymptotic p-value on large samples and says so
        # once per dimension; the fallback is the documented behaviour, not news for the console.
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
        p_values = np.atleast_1d(ks_2samp(reference, current, axis=0).pvalue)
    adjusted = adjusted_p_values(p_values, correction)
    share = float(np.mean(adjusted < alpha))
    details = {"dimensions": float(adjusted.size), "drifted_dimensions": float(np.sum(adjusted < alpha))}
    return DriftResult("ks", share, float(adjusted.min()), alpha, details)
