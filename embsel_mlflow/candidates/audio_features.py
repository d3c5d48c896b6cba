"""``model.kind=audio_features``: MFCC statistics + PCA, fitted per dataset on its clips (no labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import register_kind
from embsel_mlflow.candidates.fitted_media import FittedMediaKind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import AUDIO

if TYPE_CHECKING:
    from embsel_mlflow.models.audio_features import AudioFeaturesModel


class AudioFeaturesKind(FittedMediaKind):
    name = ModelKind.audio_features.value
    modalities = frozenset({AUDIO})

    def model_class(self) -> type[AudioFeaturesModel]:
        from embsel_mlflow.models.audio_features import AudioFeaturesModel

        return AudioFeaturesModel


KIND = register_kind(AudioFeaturesKind())
