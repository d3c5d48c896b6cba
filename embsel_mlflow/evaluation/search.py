"""Exact cosine top-k search over a corpus that arrives in chunks.

The full queries x corpus score matrix is never built: each corpus chunk is scored against
blocks of queries (at most ``max_block_elements`` scores at a time), reduced to its top k,
and merged into the running top k. Scores are computed as MTEB's ``cos_sim`` computes them
(float32, L2-normalised, matrix product), so rankings match MTEB's on the same embeddings.

Exactly tied scores may come out in either order, and when documents tie at the k-th score
either may be kept (MTEB's per-chunk ``torch.topk`` is no different). The retrieval metrics
re-rank by (score, doc id), so only a tie across the k-th place can change a score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# 2**25 float32 scores = 128 MiB per query block x corpus chunk.
DEFAULT_MAX_BLOCK_ELEMENTS = 2**25


def _normalized(embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
    import torch

    tensor = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    if tensor.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {tuple(tensor.shape)}")
    return torch.nn.functional.normalize(tensor, p=2, dim=1)


class StreamingTopK:
    """Running exact top-k cosine neighbours of fixed queries over corpus chunks."""

    def __init__(
        self,
        query_embeddings: np.ndarray,
        k: int,
        *,
        max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
    ) -> None:
        import torch

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.max_block_elements = max_block_elements
        self._queries = _normalized(query_embeddings)
        num_queries = self._queries.shape[0]
        self._scores = torch.empty((num_queries, 0), dtype=torch.float32)
        self._indices = torch.empty((num_queries, 0), dtype=torch.int64)
        self.num_documents = 0

    def add(self, doc_embeddings: np.ndarray) -> None:
        """Score one corpus chunk; its rows get global indices following the previous chunks."""
        import torch

        docs = _normalized(doc_embeddings)
        if docs.shape[0] == 0:
            return
        if docs.shape[1] != self._queries.shape[1]:
            raise ValueError(f"document dim {docs.shape[1]} != query dim {self._queries.shape[1]}")
        chunk_k = min(self.k, docs.shape[0])
        block = max(1, self.max_block_elements // docs.shape[0])
        scores, indices = [], []
        for start in range(0, self._queries.shape[0], block):
            sims = self._queries[start : start + block] @ docs.T
            top_scores, top_idx = torch.topk(sims, chunk_k, dim=1, largest=True, sorted=False)
            del sims  # free the block before scoring the next one
            merged_scores = torch.cat([self._scores[start : start + block], top_scores], dim=1)
            global_idx = top_idx + self.num_documents
            merged_idx = torch.cat([self._indices[start : start + block], global_idx], dim=1)
            keep = min(self.k, merged_scores.shape[1])
            best_scores, order = torch.topk(merged_scores, keep, dim=1, largest=True, sorted=True)
            scores.append(best_scores)
            indices.append(torch.gather(merged_idx, 1, order))
        self._scores = torch.cat(scores)
        self._indices = torch.cat(indices)
        self.num_documents += docs.shape[0]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, document indices), each (num_queries, min(k, num_documents)), best first."""
        return self._scores.numpy().copy(), self._indices.numpy().copy()


def cosine_top_k(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    k: int,
    *,
    corpus_chunk_size: int = 50_000,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine search of an in-memory corpus, chunk by chunk."""
    if corpus_chunk_size < 1:
        raise ValueError(f"corpus_chunk_size must be >= 1, got {corpus_chunk_size}")
    search = StreamingTopK(query_embeddings, k, max_block_elements=max_block_elements)
    for start in range(0, len(corpus_embeddings), corpus_chunk_size):
        search.add(corpus_embeddings[start : start + corpus_chunk_size])
    return search.result()
