"""Bootstrap confidence intervals and paired tests on the per-item results evaluate computes.

Every candidate is scored on the *same* bootstrap resamples of a dataset's items (queries,
pairs, test texts), so differences between candidates are paired. Each resample recomputes the
task's main score from the per-item table, as the task family says (``TaskFamily.item_statistic``):
the mean of per-query nDCG@10 for retrieval, the Spearman correlation of the resampled pairs
for STS, average precision for pair classification, accuracy for classification and V-measure
for clustering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.errors import DataError
from embsel_mlflow.families import FAMILIES

if TYPE_CHECKING:
    from embsel_mlflow.evaluation.base import TaskResult

CORRECTIONS = ("holm", "bonferroni", "none")


def _rows(matrix: np.ndarray) -> np.ndarray:
    return np.atleast_2d(matrix)


def dataset_seed(seed: int, dataset: str) -> list[int]:
    """The seed of a dataset's resamples: ``select.seed`` and the dataset's name alone, so a
    candidate's interval on a dataset does not depend on which other datasets are selected."""
    digest = hashlib.sha256(dataset.encode("utf-8")).digest()
    return [seed, int.from_bytes(digest[:8], "little")]


def resample_indices(n_items: int, resamples: int, seed: int | list[int]) -> np.ndarray:
    """A (resamples, n_items) matrix of item indices drawn with replacement."""
    if n_items < 1:
        raise DataError("bootstrap needs at least one item")
    return np.random.default_rng(seed).integers(0, n_items, size=(resamples, n_items))


def bootstrap_scores(result: TaskResult, indices: np.ndarray) -> np.ndarray:
    """The main score of ``result`` on each resample (one value per row of ``indices``).

    Centred on the reported main score: where the per-item table recomputes it only
    approximately (classification keeps the first of MTEB's experiments), the resampled values
    are shifted by the difference, so the interval surrounds the number the leaderboard shows.
    """
    family = FAMILIES.get(result.task)
    statistic = family.item_statistic if family is not None else None
    if statistic is None or result.per_item is None:
        raise DataError(f"no per-item results to bootstrap for task '{result.task}' on '{result.dataset}'")
    if len(result.per_item) != indices.shape[1]:
        raise DataError(
            f"dataset '{result.dataset}': {len(result.per_item)} per-item rows, expected {indices.shape[1]} "
            "(every candidate must score the same items)"
        )
    full = float(statistic(result.per_item, _rows(np.arange(indices.shape[1])))[0])
    return statistic(result.per_item, indices) + (result.main_score - full)


def confidence_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_p_value(observed: float, resampled: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference ``observed`` whose resampled values are given.

    The bootstrap distribution is centred on the observed difference (the null shifts it to 0);
    p = (1 + #{|d* - d| >= |d|}) / (B + 1). Identical candidates give exactly 1.
    """
    deviations = np.abs(resampled - observed)
    extreme = int(np.sum(deviations >= abs(observed) - 1e-12))
    return (1 + extreme) / (len(resampled) + 1)


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Multiple-comparison correction: Holm's step-down, Bonferroni, or none."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if method == "none" or m == 0:
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(running, 1.0)
    return adjusted.tolist()


@dataclass
class Comparison:
    """A candidate against the best one: difference, corrected p-value and the verdict."""

    candidate: str
    best: str
    difference: float  # best - candidate
    p_value: float  # raw
    p_adjusted: float
    significant: bool  # True: the best is better; False: tied
    # True: the candidate is significantly above a ``best`` fixed by the caller (e.g. the best
    # candidate complete on every dataset), which must never read as "tied"
    better: bool = False

    @property
    def verdict(self) -> str:
        if self.candidate == self.best:
            return "best"
        if self.better:
            return "better"
        return "worse" if self.significant else "tied"


def compare_with_best(
    scores: Mapping[str, float],
    samples: Mapping[str, np.ndarray],
    *,
    alpha: float,
    correction: str,
    best: str | None = None,
) -> dict[str, Comparison]:
    """Paired test of every candidate against ``best`` (default: the highest score)."""
    if not scores:
        return {}
    best = best or max(scores, key=lambda name: scores[name])
    others = [name for name in scores if name != best]
    differences = {name: scores[best] - scores[name] for name in others}
    raw = [paired_p_value(differences[name], samples[best] - samples[name]) for name in others]
    adjusted = adjust_p_values(raw, correction)
    comparisons = {best: Comparison(best, best, 0.0, 1.0, 1.0, False)}
    for name, p, p_adj in zip(others, raw, adjusted, strict=True):
        significant = p_adj < alpha and differences[name] > 0
        better = p_adj < alpha and differences[name] < 0
        comparisons[name] = Comparison(name, best, differences[name], p, p_adj, significant, better)
    return comparisons
