"""MMD² with an RBF kernel (median-heuristic bandwidth) and a permutation test over the pooled sample.

Permuting the pooled sample is what makes the test exact; bootstrapping the reference alone
ignores the current sample's own variance and alarms on almost every window.
"""

from __future__ import annotations

import numpy as np

from embsel_mlflow.monitoring.permutation import permutation_p_value
from embsel_mlflow.monitoring.results import DriftResult

_CHUNK = 128  # permutations per matrix product: bounds the (chunk x pooled) temporaries


def squared_distances(pooled: np.ndarray) -> np.ndarray:
    """Pairwise squared euclidean distances (float32, clipped at 0)."""
    norms = (pooled * pooled).sum(axis=1)
    distances = norms[:, None] + norms[None, :] - 2.0 * (pooled @ pooled.T)
    np.maximum(distances, 0.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def median_bandwidth(distances: np.ndarray) -> float:
    """The median heuristic: sigma = sqrt(median of the pairwise squared distances / 2)."""
    upper = distances[np.triu_indices_from(distances, k=1)]
    median = float(np.median(upper)) if upper.size else 0.0
    return float(np.sqrt(median / 2.0)) if median > 0 else 1.0


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    indicators: np.ndarray,
    alpha: float,
    *,
    bandwidth: float | None = None,
) -> DriftResult:
    """Unbiased MMD² of reference vs current; p-value from the same statistic on permuted labels.

    The kernel matrix is computed once; for an indicator ``a`` (1 = plays reference), with
    ``Ka = K a`` and ``s = K 1``: ``a'Ka`` (reference-reference), ``a's - a'Ka`` (cross) and
    ``1's - 2 a's + a'Ka`` (current-current) give every permutation's MMD² from one product.
    """
    pooled = np.concatenate([reference, current]).astype(np.float32, copy=False)
    m, n = len(reference), len(current)
    distances = squared_distances(pooled)
    sigma = float(bandwidth) if bandwidth else median_bandwidth(distances)
    kernel = np.exp(distances / np.float32(-2.0 * sigma * sigma), dtype=np.float32)
    del distances
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    grand = float(row_sums.sum())
    diagonal = float(np.trace(kernel))  # 1 per point for an RBF kernel; kept general

    def statistic(indicator_rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(indicator_rows)
        quad = ((rows @ kernel) * rows).sum(axis=1, dtype=np.float64)  # a'Ka
        lin = rows.astype(np.float64) @ row_sums  # a's
        ref_diag = rows.astype(np.float64) @ np.diagonal(kernel).astype(np.float64)
        ref_ref = (quad - ref_diag) / (m * (m - 1))
        cur_cur = (grand - 2 * lin + quad - (diagonal - ref_diag)) / (n * (n - 1))
        cross = (lin - quad) / (m * n)
        return ref_ref + cur_cur - 2 * cross

    observed_rows = np.zeros((1, m + n), dtype=np.float32)
    observed_rows[0, :m] = 1.0
    observed = float(statistic(observed_rows)[0])
    null = np.concatenate(
        [statistic(indicators[start : start + _CHUNK]) for start in range(0, len(indicators), _CHUNK)]
    )
    return DriftResult("mmd", observed, permutation_p_value(observed, null), alpha, {"bandwidth": sigma})
