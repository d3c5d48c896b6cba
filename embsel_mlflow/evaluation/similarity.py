"""Paired similarity scores of two embedding matrices, as MTEB's STS and pair evaluators compute them."""

from __future__ import annotations

import numpy as np


def paired_scores(embeddings1: np.ndarray, embeddings2: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise cosine similarity, dot product, Manhattan and Euclidean distances.

    Cosine is ``1 - paired_cosine_distances`` and dot is a per-row ``np.dot``, exactly as MTEB
    computes them; distances are returned positive (callers negate them where MTEB does).
    """
    from sklearn.metrics.pairwise import (
        paired_cosine_distances,
        paired_euclidean_distances,
        paired_manhattan_distances,
    )

    if embeddings1.shape != embeddings2.shape:
        raise ValueError(f"paired embeddings differ in shape: {embeddings1.shape} vs {embeddings2.shape}")
    return {
        "cosine": 1 - paired_cosine_distances(embeddings1, embeddings2),
        "dot": np.asarray([np.dot(embeddings1[i], embeddings2[i]) for i in range(len(embeddings1))]),
        "manhattan": paired_manhattan_distances(embeddings1, embeddings2),
        "euclidean": paired_euclidean_distances(embeddings1, embeddings2),
    }
