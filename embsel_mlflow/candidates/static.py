"""``model.kind=static``: a model2vec static model, distilled from ``name_or_path`` (``model.static``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.static import StaticEncoder


class StaticKind(CandidateKind):
    name = ModelKind.static.value
    registrable = True
    tokenized = True

    def build(self, cfg: ModelConfig, context: BuildContext) -> StaticEncoder:
        from embsel_mlflow.models.static import load_static

        return load_static(cfg, models_dir=context.models_dir)


KIND = register_kind(StaticKind())
