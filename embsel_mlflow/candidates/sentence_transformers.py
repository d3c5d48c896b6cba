"""``model.kind=sentence_transformers``: a SentenceTransformer repo or directory (modules.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.encoder import Encoder


class SentenceTransformersKind(CandidateKind):
    name = ModelKind.sentence_transformers.value
    registrable = True
    trainable = True
    has_variants = True
    tokenized = True

    def build(self, cfg: ModelConfig, context: BuildContext) -> Encoder:
        from embsel_mlflow.models.encoder import load_encoder

        # lazily: a warm run, whose embeddings are all cached, never loads the model
        return load_encoder(cfg, calibration=context.calibration, models_dir=context.models_dir, lazy=True)


KIND = register_kind(SentenceTransformersKind())
