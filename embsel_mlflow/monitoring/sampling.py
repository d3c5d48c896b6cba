"""Bounded cost: a fixed-seed subsample of each side, and PCA fitted on the reference only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def subsample_indices(count: int, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` rows of ``count``, the same for the same seed."""
    if max_samples is None or count <= max_samples:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=max_samples, replace=False))


@dataclass
class Projection:
    """A PCA basis fitted on the reference embeddings (``components``: k x dim, orthonormal rows)."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Coordinates along the components, not centred: every method but the cosine of the means
        is translation invariant, and that cosine needs the means' direction from the origin."""
        return (embeddings @ self.components.T).astype(np.float32, copy=False)


def fit_pca(reference: np.ndarray, components: int) -> Projection:
    """PCA of ``reference`` (SVD of the centred matrix); ``components`` is capped at the rank bound."""
    data = np.asarray(reference, dtype=np.float64)
    k = max(1, min(int(components), data.shape[0] - 1, data.shape[1]))
    mean = data.mean(axis=0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    variance = singular**2
    ratio = variance[:k] / variance.sum() if variance.sum() > 0 else np.zeros(k)
    return Projection(mean.astype(np.float32), vt[:k].astype(np.float32), ratio)
