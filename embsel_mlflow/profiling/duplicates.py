"""Exact duplicates after normalisation, and near-duplicates by MinHash LSH over char n-grams."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Texts are compared on their first characters: near-duplicates share their opening, and the cost
# of a long document stays that of a short one.
_PREFIX_CHARS = 200


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

    Jaccard is taken over each text's first 200 characters.

    Exact duplicates are counted elsewhere: pass distinct texts. Only ``max_texts`` texts, evenly
    spaced, are compared so the cost stays bounded on large tables.
    """
    from datasketch import MinHash, MinHashLSH

    sample = evenly_spaced(distinct_texts, max_texts)
    if len(sample) < 2:
        return NearDuplicates(len(sample), 0, threshold)
    shingles = [_shingles(text[:_PREFIX_CHARS], ngram) for text in sample]
    # crc32 instead of datasketch's default sha1: the same estimate, many times faster
    hashes = MinHash.bulk(shingles, num_perm=num_perm, seed=1, hashfunc=zlib.crc32)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for key, minhash in enumerate(hashes):
        lsh.insert(key, minhash, check_duplication=False)
    found = sum(1 for key, minhash in enumerate(hashes) if len(lsh.query(minhash)) > 1)
    return NearDuplicates(len(sample), found, threshold)


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
