"""Top-k retrieval over a quantized corpus: int8 or binary documents, optionally rescored.

Documents are kept only in their stored form. int8: cosine of the float query against the
dequantized documents. binary: Hamming distance between the query's and the documents' sign
bits; with ``rescore_multiplier`` m > 0 the k x m nearest by Hamming are rescored by cosine of
the float query against their int8 codes (sentence-transformers' binary + int8 rescoring
recipe), and the top k kept. The arithmetic is ``models/stored_embedding_math.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.config import EmbeddingDtype
from embsel_mlflow.evaluation.search import StreamingTopK
from embsel_mlflow.models import stored_embedding_math as math

if TYPE_CHECKING:
    from embsel_mlflow.models.stored_embeddings import EmbeddingFormat

_HAMMING_BLOCK_BYTES = 2**26  # XOR block of queries x documents x bytes


def hamming_distances(query_bits: np.ndarray, doc_bits: np.ndarray) -> np.ndarray:
    """(queries, documents) Hamming distances of packed sign bits (uint8 rows)."""
    out = np.empty((len(query_bits), len(doc_bits)), dtype=np.int32)
    block = max(1, _HAMMING_BLOCK_BYTES // max(1, doc_bits.size))
    for start in range(0, len(query_bits), block):
        xor = np.bitwise_xor(query_bits[start : start + block, None, :], doc_bits[None, :, :])
        out[start : start + block] = np.bitwise_count(xor).sum(axis=2, dtype=np.int32)
    return out


class QuantizedTopK:
    """Same interface as :class:`StreamingTopK`; documents arrive as float chunks and are quantized.

    Each chunk is quantized, searched and dropped: only the running top k (binary: the k x m
    nearest by Hamming, with their rescored cosines) is kept, so memory does not grow with
    the corpus. The result equals a search of the whole quantized corpus at once.
    """

    def __init__(self, fmt: EmbeddingFormat, query_embeddings: np.ndarray, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.format, self.k = fmt, k
        self._queries = np.asarray(query_embeddings, dtype=np.float32)
        self._binary = EmbeddingDtype(fmt.dtype) is EmbeddingDtype.binary
        self._int8_search = None if self._binary else StreamingTopK(self._queries, k)
        # binary: the running (Hamming distance, document index, rescored cosine) candidates
        self._first = k * max(1, fmt.rescore_multiplier)
        num_queries = len(self._queries)
        self._distances = np.empty((num_queries, 0), dtype=np.int32)
        self._indices = np.empty((num_queries, 0), dtype=np.int64)
        self._rescored = np.empty((num_queries, 0), dtype=np.float32)
        self._query_bits = math.sign_bits(self._queries) if self._binary else None
        self._unit_queries = _unit(self._queries)
        self.num_documents = 0
        self.stored_bytes = 0  # bytes of the searched index (binary: the bits; int8: the codes)

    @property
    def _ranges(self) -> np.ndarray:
        assert self.format.ranges is not None, "int8 codes need the format's calibrated ranges"
        return self.format.ranges

    def add(self, doc_embeddings: np.ndarray) -> None:
        docs = np.asarray(doc_embeddings, dtype=np.float32)
        if len(docs) == 0:
            return
        codes = math.int8_codes(docs, self._ranges) if self.format.keeps_int8 else None
        if self._int8_search is not None:
            assert codes is not None
            self._int8_search.add(math.dequantize(codes, self._ranges))
            self.stored_bytes += codes.nbytes
        else:
            bits = math.sign_bits(docs)
            self.stored_bytes += bits.nbytes
            self._add_binary(bits, codes)
        self.num_documents += len(docs)

    def _add_binary(self, bits: np.ndarray, codes: np.ndarray | None) -> None:
        """Merge one chunk's nearest by (Hamming distance, index) into the running candidates."""
        assert self._query_bits is not None
        distances = hamming_distances(self._query_bits, bits)
        local = _top_smallest(distances, min(self._first, len(bits)))
        chunk_distances = np.take_along_axis(distances, local, axis=1)
        del distances
        if codes is not None:  # rescoring: cosine of the float query against the int8 codes
            restored = _unit(math.dequantize(codes[local], self._ranges))
            rescored = np.einsum("qd,qkd->qk", self._unit_queries, restored).astype(np.float32)
        else:
            rescored = np.zeros(local.shape, dtype=np.float32)
        distances = np.concatenate([self._distances, chunk_distances], axis=1)
        indices = np.concatenate([self._indices, local + self.num_documents], axis=1)
        scores = np.concatenate([self._rescored, rescored], axis=1)
        order = np.lexsort((indices, distances), axis=1)[:, : self._first]
        self._distances = np.take_along_axis(distances, order, axis=1)
        self._indices = np.take_along_axis(indices, order, axis=1)
        self._rescored = np.take_along_axis(scores, order, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, document indices), each (num_queries, min(k, num_documents)), best first."""
        if self._int8_search is not None:
            return self._int8_search.result()
        keep = min(self.k, self._indices.shape[1])
        dim = self._queries.shape[1]
        if self.format.rescore_multiplier == 0:
            scores = 1.0 - 2.0 * self._distances[:, :keep] / dim
            return scores.astype(np.float32), self._indices[:, :keep].copy()
        order = np.argsort(-self._rescored, axis=1, kind="stable")[:, :keep]
        return (
            np.take_along_axis(self._rescored, order, axis=1),
            np.take_along_axis(self._indices, order, axis=1),
        )


def _top_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the k smallest values, smallest first, ties by index.

    Ties are common (Hamming distances are small integers); breaking them by index at the k-th
    place too makes a chunked search return exactly what one search of the whole corpus does.
    """
    rows, width = values.shape
    if k < width:
        kth = np.partition(values, k - 1, axis=1)[:, k - 1 : k]
        below = values < kth
        tied = values == kth
        # of the values equal to the k-th, the lowest-index ones that fill the k places
        chosen = below | (tied & (np.cumsum(tied, axis=1) <= k - below.sum(axis=1, keepdims=True)))
        part = np.nonzero(chosen)[1].reshape(rows, k)  # row-major: ascending index per row
    else:
        part = np.tile(np.arange(width), (rows, 1))
    order = np.lexsort((part, np.take_along_axis(values, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
