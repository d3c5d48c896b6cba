"""BM25 (bm25s): a lexical baseline that ranks a corpus for each query, without embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config import Bm25Config
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.models.base import LEXICAL
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media import Media


class Bm25Ranker:
    """Okapi BM25 over the retrieval corpus; :meth:`rank` replaces encoding + cosine search.

    Not an embedding model: it cannot be registered, served or monitored, and ``encode``
    refuses. It is fitted (indexed) on each corpus as it is ranked, so it has no parameters.
    """

    registrable = False
    device = "cpu"
    embedding_dim = 0
    num_parameters = 0
    disk_size_bytes = None

    def __init__(self, cfg: ModelConfig) -> None:
        self._cfg = cfg
        self._settings = cfg.bm25 or Bm25Config()
        self._stemmer = _stemmer(self._settings.stemmer)

    def for_dataset(self, data: TaskData) -> Bm25Ranker:
        if not getattr(data.family, "ranks_documents", False):  # asks the task family (retrieval)
            raise ConfigError(
                f"bm25 ranks documents for retrieval tasks only, and dataset '{data.name}' is "
                f"{data.task}; drop bm25 from the candidates for this dataset"
            )
        return self

    def rank(
        self, query_texts: Sequence[str], corpus_texts: Sequence[str], top_k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, corpus indices), each (num_queries, min(top_k, len(corpus))), best first."""
        import bm25s

        s = self._settings
        tokenize = {"stopwords": s.stopwords or [], "stemmer": self._stemmer, "show_progress": False}
        retriever = bm25s.BM25(method=s.method, k1=s.k1, b=s.b)
        retriever.index(bm25s.tokenize(list(corpus_texts), **tokenize), show_progress=False)
        queries = bm25s.tokenize(list(query_texts), return_ids=False, **tokenize)
        k = min(top_k, len(corpus_texts))
        indices, scores = retriever.retrieve(queries, k=k, show_progress=False, n_threads=1)
        return np.asarray(scores, dtype=np.float32), np.asarray(indices, dtype=np.int64)

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        raise ModelError(
            f"'{self._cfg.name}' is BM25, a ranker without embeddings: it can only be evaluated on "
            "retrieval tasks"
        )

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel(f"bm25s {self._settings.method}", LEXICAL)

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self.source, self._cfg.bm25)


def _stemmer(language: str | None) -> Any:
    if language is None:
        return None
    try:
        import Stemmer
    except ImportError as err:
        raise ModelError(
            "model.bm25.stemmer needs PyStemmer: pip install PyStemmer, or set model.bm25.stemmer=null"
        ) from err
    try:
        return Stemmer.Stemmer(language)
    except KeyError as err:
        raise ConfigError(
            f"model.bm25.stemmer={language!r} is not a PyStemmer language; e.g. english, or null"
        ) from err
