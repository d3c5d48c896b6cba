"""Paired similarity scores of two embedding matrices, as MTEB's STS and pair evaluators compute them."""

from __future__ import annotations

import numpy as np


def paired_scores(embeddings1: np.ndarray, embeddings2: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise cosine similarity, dot product, Manhattan and Euclidean distances.

    MTEB computes these with scikit-learn's ``paired_*_distances`` (cosine as ``1 - distance``)
    and a per-row ``np.dot``. The same numpy operations run here in the same order, so every
    value is bitwise scikit-learn's (tests/test_similarity_scores.py checks it): importing
    scikit-learn cost 0.7 s (with the scipy.stats it pulls in), a quarter of a warm run.
    Distances are returned positive (callers negate them where MTEB does).
    """
    if embeddings1.shape != embeddings2.shape:
        raise ValueError(f"paired embeddings differ in shape: {embeddings1.shape} vs {embeddings2.shape}")
    x, y = _paired_floats(embeddings1, embeddings2)
    difference = x - y
    return {
        "cosine": 1 - 0.5 * _row_norms(_l2_normalized(x) - _l2_normalized(y), squared=True),
        "dot": np.asarray([np.dot(embeddings1[i], embeddings2[i]) for i in range(len(embeddings1))]),
        "manhattan": np.abs(difference).sum(axis=-1),
        "euclidean": _row_norms(difference),
    }


def _paired_floats(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float32 when both are float32, else float64; finite (scikit-learn's checks)."""
    dtype = np.float32 if x.dtype == y.dtype == np.float32 else np.float64
    x, y = np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"paired embeddings must be 2-D (one row per text), got shape {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired embeddings contain NaN or infinity; check the model's output")
    return x, y


def _row_norms(x: np.ndarray, *, squared: bool = False) -> np.ndarray:
    norms = np.einsum("ij,ij->i", x, x)
    return norms if squared else np.sqrt(norms)


def _l2_normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; a (near-)zero row is left as it is, as scikit-learn's ``normalize``."""
    norms = _row_norms(x)
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return x / norms[:, None]
