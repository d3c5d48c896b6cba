"""``model.kind=resemblyzer``: resemblyzer's pretrained speaker encoder, from the weights in its wheel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import AUDIO

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.resemblyzer_model import ResemblyzerModel


class ResemblyzerKind(CandidateKind):
    name = ModelKind.resemblyzer.value
    registrable = True  # served through its self-contained forward (models/resemblyzer_forward.py)
    modalities = frozenset({AUDIO})

    def build(self, cfg: ModelConfig, context: BuildContext) -> ResemblyzerModel:
        from embsel_mlflow.models.resemblyzer_model import ResemblyzerModel

        return ResemblyzerModel(cfg)


KIND = register_kind(ResemblyzerKind())
