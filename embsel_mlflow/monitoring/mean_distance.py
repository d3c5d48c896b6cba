"""Distance between the mean embeddings of reference and current, with a permutation p-value."""

from __future__ import annotations

import numpy as np

from embsel_mlflow.monitoring.permutation import permutation_p_value
from embsel_mlflow.monitoring.results import DriftResult


def mean_distances(
    reference: np.ndarray, current: np.ndarray, indicators: np.ndarray, alpha: float
) -> list[DriftResult]:
    """Cosine and euclidean distance of the two means; each tested by relabelling the pooled sample.

    ``indicators`` (permutations x pooled) comes from ``permutation_indicators``: the permuted
    "reference" means of every permutation are one matrix product.
    """
    pooled = np.concatenate([reference, current]).astype(np.float32, copy=False)
    n_ref, n_cur = len(reference), len(current)
    total = pooled.sum(axis=0, dtype=np.float64)
    ref_sums = (indicators @ pooled).astype(np.float64)  # permutations x dim
    ref_means = ref_sums / n_ref
    cur_means = (total - ref_sums) / n_cur
    observed_ref = reference.mean(axis=0, dtype=np.float64)
    observed_cur = current.mean(axis=0, dtype=np.float64)
    results = []
    for name, distance in (("mean_cosine", _cosine_distance), ("mean_euclidean", _euclidean_distance)):
        observed = float(distance(observed_ref[None], observed_cur[None])[0])
        null = distance(ref_means, cur_means)
        results.append(DriftResult(name, observed, permutation_p_value(observed, null), alpha))
    return results


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return 1.0 - (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def _euclidean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1)
