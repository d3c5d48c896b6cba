"""``model.kind=bm25``: a lexical ranker for retrieval tasks, not an embedding model (``model.bm25``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.bm25 import Bm25Ranker


class Bm25Kind(CandidateKind):
    name = ModelKind.bm25.value
    retrieval_only = True
    embeds = False  # ranks without embeddings: never cached

    def build(self, cfg: ModelConfig, context: BuildContext) -> Bm25Ranker:
        from embsel_mlflow.models.bm25 import Bm25Ranker

        return Bm25Ranker(cfg)


KIND = register_kind(Bm25Kind())
