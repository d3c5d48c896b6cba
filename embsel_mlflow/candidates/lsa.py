"""``model.kind=lsa``: TF-IDF + truncated SVD fitted per dataset on its unlabelled texts (``model.lsa``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.lsa import LsaModel


class LsaKind(CandidateKind):
    name = ModelKind.lsa.value
    fitted_per_dataset = True

    def build(self, cfg: ModelConfig, context: BuildContext) -> LsaModel:
        from embsel_mlflow.models.lsa import LsaModel

        return LsaModel(cfg, models_dir=context.models_dir)


KIND = register_kind(LsaKind())
