"""``model.kind=clip``: an image-text dual encoder (transformers CLIPModel / SiglipModel)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import IMAGE, TEXT

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.clip import ClipModel


class ClipKind(CandidateKind):
    name = ModelKind.clip.value
    registrable = True
    trainable = True  # contrastively on image-text pairs: its ``model`` and ``processor``
    tokenized = True
    modalities = frozenset({TEXT, IMAGE})

    def build(self, cfg: ModelConfig, context: BuildContext) -> ClipModel:
        from embsel_mlflow.models.clip import load_clip

        return load_clip(cfg)


KIND = register_kind(ClipKind())
