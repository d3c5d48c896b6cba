"""``model.kind=clap``: a transformers ClapModel, texts and audio clips in one embedding space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import AUDIO, TEXT

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.clap import ClapEncoder


class ClapKind(CandidateKind):
    name = ModelKind.clap.value
    registrable = True  # served through its self-contained forward (models/clap_forward.py)
    tokenized = True  # its texts go through a RoBERTa tokenizer (the model's ``tokenizer``)
    modalities = frozenset({TEXT, AUDIO})

    def build(self, cfg: ModelConfig, context: BuildContext) -> ClapEncoder:
        from embsel_mlflow.models.clap import load_clap

        return load_clap(cfg)


KIND = register_kind(ClapKind())
