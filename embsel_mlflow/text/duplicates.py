"""Exact duplicates after normalisation, and near-duplicates by MinHash LSH over char n-grams.

The MinHash LSH is datasketch's scheme (same permutations, crc32 shingle hashes, the same bands
and rows for a threshold), vectorised in numpy: the same answer without importing datasketch,
whose import (it loads scipy) alone cost more than profiling 10k texts.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Texts are compared on their first characters: near-duplicates share their opening, and the cost
# of a long document stays that of a short one.
_PREFIX_CHARS = 200
_MERSENNE_PRIME = (1 << 61) - 1  # datasketch's universal hashing modulus
_MAX_HASH = (1 << 32) - 1
_SEED = 1
_CHUNK_SHINGLES = 1024  # shingles per numpy step: the (shingles x num_perm) array stays in cache


def normalize_texts(texts: pd.Series) -> pd.Series:
    """Unicode NFKC, case-folded, whitespace collapsed: "  Hello\\u00a0WORLD " -> "hello world"."""
    return texts.str.normalize("NFKC").str.casefold().str.replace(r"\s+", " ", regex=True).str.strip()


@dataclass
class NearDuplicates:
    texts_checked: int  # distinct normalised texts compared (a bounded, evenly spaced sample)
    with_near_duplicate: int  # of those, texts with at least one other text above the threshold
    threshold: float

    @property
    def rate(self) -> float:
        return self.with_near_duplicate / self.texts_checked if self.texts_checked else 0.0


def near_duplicates(
    distinct_texts: list[str], *, threshold: float, ngram: int, num_perm: int, max_texts: int
) -> NearDuplicates:
    """Texts whose char ``ngram`` Jaccard with another is about ``threshold`` or more (MinHash LSH).

    Jaccard is taken over each text's first 200 characters. A text counts when it shares an LSH
    bucket with another (the candidates ``MinHashLSH.query`` returns).

    Exact duplicates are counted elsewhere: pass distinct texts. Only ``max_texts`` texts, evenly
    spaced, are compared so the cost stays bounded on large tables.
    """
    import numpy as np

    sample = evenly_spaced(distinct_texts, max_texts)
    if len(sample) < 2:
        return NearDuplicates(len(sample), 0, threshold)
    signatures = minhash_signatures([_shingles(text[:_PREFIX_CHARS], ngram) for text in sample], num_perm)
    bands, rows = lsh_bands(threshold, num_perm)
    flagged = np.zeros(len(sample), dtype=bool)
    for band in range(bands):
        _, bucket, sizes = np.unique(
            signatures[:, band * rows : (band + 1) * rows], axis=0, return_inverse=True, return_counts=True
        )
        flagged |= sizes[bucket.ravel()] > 1
    return NearDuplicates(len(sample), int(flagged.sum()), threshold)


def minhash_signatures(shingle_sets: list[set[bytes]], num_perm: int) -> np.ndarray:
    """One MinHash per set, (sets x num_perm) uint64: datasketch ``MinHash.bulk(seed=1, crc32)``."""
    import numpy as np

    a, b = _permutations(num_perm)
    hashes = np.fromiter(
        (zlib.crc32(shingle) for shingles in shingle_sets for shingle in shingles), dtype=np.uint64
    )
    bounds = np.cumsum([0] + [len(s) for s in shingle_sets])  # set i: hashes[bounds[i]:bounds[i + 1]]
    signatures = np.empty((len(shingle_sets), num_perm), dtype=np.uint64)
    buffer = np.empty((_CHUNK_SHINGLES, num_perm), dtype=np.uint64)
    first = 0
    while first < len(shingle_sets):  # chunks of whole sets, small enough to stay in cache
        last = int(np.searchsorted(bounds, bounds[first] + _CHUNK_SHINGLES, side="right")) - 1
        last = max(last, first + 1)  # a set larger than a chunk is a chunk of its own
        begin, end = int(bounds[first]), int(bounds[last])
        chunk = (
            buffer[: end - begin]
            if end - begin <= len(buffer)
            else np.empty((end - begin, num_perm), np.uint64)
        )
        # (hash * a + b) % prime & max_hash, in place; uint64 products wrap mod 2**64, as datasketch's do
        np.multiply(hashes[begin:end, None], a, out=chunk)
        np.add(chunk, b, out=chunk)
        np.remainder(chunk, np.uint64(_MERSENNE_PRIME), out=chunk)
        np.bitwise_and(chunk, np.uint64(_MAX_HASH), out=chunk)
        signatures[first:last] = np.minimum.reduceat(chunk, bounds[first:last] - begin, axis=0)
        first = last
    return signatures


@functools.cache
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    generator = np.random.RandomState(_SEED)
    pairs = [
        (
            generator.randint(1, _MERSENNE_PRIME, dtype=np.uint64),
            generator.randint(0, _MERSENNE_PRIME, dtype=np.uint64),
        )
        for _ in range(num_perm)
    ]
    a, b = np.array(pairs, dtype=np.uint64).T
    return a, b


@functools.cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives + false negatives, equally weighted.

    datasketch's ``_optimal_param``; the integrands are polynomials of degree <= num_perm, which
    Gauss-Legendre quadrature with num_perm nodes integrates exactly.
    """
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(max(num_perm, 2))

    def integral(low: float, high: float, bands: int, rows: int, *, positive: bool) -> float:
        s = (high - low) / 2 * nodes + (high + low) / 2
        collide = 1 - (1 - s**rows) ** bands
        return float((high - low) / 2 * np.dot(weights, collide if positive else 1 - collide))

    best, best_error = (0, 0), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = 0.5 * integral(0.0, threshold, bands, rows, positive=True) + 0.5 * integral(
                threshold, 1.0, bands, rows, positive=False
            )
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def _shingles(text: str, ngram: int) -> set[bytes]:
    if len(text) <= ngram:
        return {text.encode("utf-8")}
    return {text[i : i + ngram].encode("utf-8") for i in range(len(text) - ngram + 1)}


def evenly_spaced(items: list[str], limit: int) -> list[str]:
    """At most ``limit`` items spread over the whole list (deterministic, unlike a random sample)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]
