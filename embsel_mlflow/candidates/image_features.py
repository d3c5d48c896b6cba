"""``model.kind=image_features``: pixels or HOG + PCA fitted per dataset on its images only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import register_kind
from embsel_mlflow.candidates.fitted_media import FittedMediaKind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.media.items import IMAGE

if TYPE_CHECKING:
    from embsel_mlflow.models.image_features import ImageFeaturesModel


class ImageFeaturesKind(FittedMediaKind):
    name = ModelKind.image_features.value
    modalities = frozenset({IMAGE})

    def model_class(self) -> type[ImageFeaturesModel]:
        from embsel_mlflow.models.image_features import ImageFeaturesModel

        return ImageFeaturesModel


KIND = register_kind(ImageFeaturesKind())
