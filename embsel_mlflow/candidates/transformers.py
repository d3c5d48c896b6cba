"""``model.kind=transformers``: a plain transformers encoder with our pooling (``model.pooling``)."""

from __future__ import annotations

from embsel_mlflow.candidates.base import register_kind
from embsel_mlflow.candidates.sentence_transformers import SentenceTransformersKind
from embsel_mlflow.config import ModelKind


class TransformersKind(SentenceTransformersKind):
    """Built like a sentence-transformers model (``load_encoder`` assembles the pooling itself)."""

    name = ModelKind.transformers.value


KIND = register_kind(TransformersKind())
