"""``model.kind=audio_features``: MFCC statistics + PCA, fitted per dataset on its clips (no labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import AUDIO

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.audio_features import AudioFeaturesModel


class AudioFeaturesKind(CandidateKind):
    name = ModelKind.audio_features.value
    fitted_per_dataset = True
    # The fitted copy (for_dataset) is served through models/audio_features_forward.py: an audio
    # selection's champion can be registered even when it is the baseline.
    registrable = True
    modalities = frozenset({AUDIO})

    def build(self, cfg: ModelConfig, context: BuildContext) -> AudioFeaturesModel:
        from embsel_mlflow.models.audio_features import AudioFeaturesModel, saved_fit_dir

        saved = saved_fit_dir(cfg.name_or_path)
        if saved is not None:  # a logged model's weights/: its fit, on every dataset
            return AudioFeaturesModel.from_saved(cfg, saved)
        return AudioFeaturesModel(cfg, models_dir=context.models_dir)


KIND = register_kind(AudioFeaturesKind())
