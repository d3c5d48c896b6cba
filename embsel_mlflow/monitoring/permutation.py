"""Permutation tests over the pooled sample, vectorised: one indicator matrix, many statistics.

Row ``i`` of the matrix marks which pooled points play "reference" in permutation ``i``; a
statistic that is linear or quadratic in that indicator is then one matrix product for all
permutations at once, instead of a Python loop.
"""

from __future__ import annotations

import numpy as np


def permutation_indicators(n_reference: int, n_current: int, permutations: int, seed: int) -> np.ndarray:
    """``(permutations, n_reference + n_current)`` float32 0/1 rows, each with ``n_reference`` ones.

    Random relabellings of the pooled sample (reference first, then current), from a fixed seed.
    """
    total = n_reference + n_current
    rng = np.random.default_rng(seed)
    order = rng.random((permutations, total)).argsort(axis=1)  # a random permutation per row
    indicators = np.zeros((permutations, total), dtype=np.float32)
    np.put_along_axis(indicators, order[:, :n_reference], 1.0, axis=1)
    return indicators


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (1 + #permutations): exact level, never 0 (Phipson & Smyth 2010).

    A tiny relative tolerance keeps float rounding from splitting ties with the observed value.
    """
    tolerance = 1e-9 * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null >= observed - tolerance)) / (1 + null.size))
