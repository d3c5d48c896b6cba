"""The stored-embedding arithmetic: truncation, int8 codes and their bucket centres, sign bits.

One file for evaluation (``models/stored_embeddings.py``, ``evaluation/quantized_search.py``)
and the served pyfunc, which MLflow loads without embsel_mlflow installed: this file is logged
beside it (``code_paths``, as ``exported_forward.py`` is), so it imports numpy only.

int8 follows sentence-transformers' ``quantize_embeddings(precision="int8", ranges=...)``
exactly: 255 buckets per dimension between the calibrated minimum and maximum.
"""

from __future__ import annotations

import numpy as np

LEVELS = 255  # int8 buckets per dimension, as sentence-transformers quantizes
FLOAT32, INT8, BINARY = "float32", "int8", "binary"


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def truncate(embeddings: np.ndarray, dim: int | None) -> np.ndarray:
    """The first ``dim`` dimensions, re-normalised (a Matryoshka prefix); all of them for None."""
    if dim is None:
        return embeddings
    return unit_rows(np.ascontiguousarray(embeddings[:, :dim]))


def _steps(ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bucket starts, bucket widths) per dimension of (2, dim) min/max ranges."""
    ranges = np.asarray(ranges).astype(np.float32, copy=False)
    starts = ranges[0, :]
    steps = (ranges[1, :] - starts) / LEVELS
    return starts, np.where(steps == 0, 1, steps)


def int8_codes(embeddings: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """int8 codes with the calibrated ranges (as sentence-transformers' ``quantize_embeddings``)."""
    floats = np.asarray(embeddings, dtype=np.float32)
    starts, steps = _steps(ranges)
    buckets = np.clip(np.floor((floats - starts) / steps), 0, LEVELS)
    return (buckets - 128).astype(np.int8)


def dequantize(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Bucket centres of int8 codes: the float vectors int8 scoring compares."""
    starts, steps = _steps(ranges)
    return ((codes.astype(np.float32) + 128.0 + 0.5) * steps + starts).astype(np.float32)


def sign_bits(embeddings: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte (sentence-transformers' "ubinary")."""
    return np.packbits(embeddings > 0, axis=-1)


def plus_minus_one(embeddings: np.ndarray) -> np.ndarray:
    """Sign bits as +-1 floats: their cosine is ``1 - 2 * hamming / dim``."""
    return np.where(embeddings > 0, 1.0, -1.0).astype(np.float32)


def to_scored(
    embeddings: np.ndarray,
    dtype: str = FLOAT32,
    truncate_dim: int | None = None,
    ranges: np.ndarray | None = None,
) -> np.ndarray:
    """The float vectors a task compares: truncated, then int8-dequantized or +-1 bits."""
    embeddings = truncate(embeddings, truncate_dim)
    if dtype == INT8:
        if ranges is None:
            raise ValueError("int8 embeddings need calibrated ranges")
        return dequantize(int8_codes(embeddings, ranges), ranges)
    if dtype == BINARY:
        return plus_minus_one(embeddings)
    return embeddings


def bytes_per_vector(dtype: str, dim: int) -> int:
    """Bytes one stored (searched) vector takes."""
    if dtype == BINARY:
        return (dim + 7) // 8
    return dim if dtype == INT8 else 4 * dim
