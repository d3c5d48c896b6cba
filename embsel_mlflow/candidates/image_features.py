"""``model.kind=image_features``: pixels or HOG + PCA fitted per dataset on its images only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import IMAGE

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.image_features import ImageFeaturesModel


class ImageFeaturesKind(CandidateKind):
    name = ModelKind.image_features.value
    registrable = True  # once fitted: the fit is logged and served
    fitted_per_dataset = True
    modalities = frozenset({IMAGE})

    def build(self, cfg: ModelConfig, context: BuildContext) -> ImageFeaturesModel:
        from embsel_mlflow.models.image_features import ImageFeaturesModel, saved_fit_dir

        saved = saved_fit_dir(cfg.name_or_path)
        if saved is not None:  # a logged model's weights/: its fit, on every dataset
            return ImageFeaturesModel.from_saved(cfg, saved)
        return ImageFeaturesModel(cfg, models_dir=context.models_dir)


KIND = register_kind(ImageFeaturesKind())
