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
    """Same interface as :class:`StreamingTopK`; documents arrive as float chunks and are quantized."""

    def __init__(self, fmt: EmbeddingFormat, query_embeddings: np.ndarray, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.format, self.k = fmt, k
        self._queries = np.asarray(query_embeddings, dtype=np.float32)
        self._binary = EmbeddingDtype(fmt.dtype) is EmbeddingDtype.binary
        self._bits: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        self._int8_search = None if self._binary else StreamingTopK(self._queries, k)
        self.num_documents = 0

    @property
    def _ranges(self) -> np.ndarray:
        assert self.format.ranges is not None, "int8 codes need the format's calibrated ranges"
        return self.format.ranges

    def add(self, doc_embeddings: np.ndarray) -> None:
        docs = np.asarray(doc_embeddings, dtype=np.float32)
        if len(docs) == 0:
            return
        if self.format.keeps_int8:
            codes = math.int8_codes(docs, self._ranges)
            self._codes.append(codes)
            if self._int8_search is not None:
                self._int8_search.add(math.dequantize(codes, self._ranges))
        if self._binary:
            self._bits.append(math.sign_bits(docs))
        self.num_documents += len(docs)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the searched index (binary: the bits; int8: the codes)."""
        return int(sum(array.nbytes for array in (self._bits if self._binary else self._codes)))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, document indices), each (num_queries, min(k, num_documents)), best first."""
        if self._int8_search is not None:
            return self._int8_search.result()
        bits = np.concatenate(self._bits) if self._bits else np.zeros((0, 1), np.uint8)
        distances = hamming_distances(math.sign_bits(self._queries), bits)
        dim = self._queries.shape[1]
        multiplier = self.format.rescore_multiplier
        first = min(self.k * max(1, multiplier), len(bits))
        candidates = _top_smallest(distances, first)
        if multiplier == 0:
            keep = candidates[:, : min(self.k, first)]
            scores = 1.0 - 2.0 * np.take_along_axis(distances, keep, axis=1) / dim
            return scores.astype(np.float32), keep
        codes = np.concatenate(self._codes)
        queries = _unit(self._queries)
        rescored = np.einsum("qd,qkd->qk", queries, _unit(math.dequantize(codes[candidates], self._ranges)))
        order = np.argsort(-rescored, axis=1, kind="stable")[:, : min(self.k, first)]
        return (
            np.take_along_axis(rescored, order, axis=1).astype(np.float32),
            np.take_along_axis(candidates, order, axis=1),
        )


def _top_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the k smallest values, smallest first (ties by index)."""
    if k < values.shape[1]:
        part = np.argpartition(values, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(values.shape[1]), (len(values), 1))
    order = np.lexsort((part, np.take_along_axis(values, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
