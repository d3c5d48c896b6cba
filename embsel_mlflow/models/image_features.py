"""``model.kind=image_features``: grayscale pixels or HOG + PCA, fitted per dataset on its images only.

The image counterpart of LSA: :meth:`ImageFeaturesModel.for_dataset` fits a PCA on the images the
task family names (``fit_texts``: the classification train split, else the evaluated images;
never a label), decoding one batch at a time. A fit is plain arrays kept under
``<cache>/models/image_features/`` (the same images and settings are never fitted twice) and
is what the served model loads (``save_serving``). With ``model.name_or_path`` naming a saved
fit (a logged model's ``weights/``), that fit is used as it is on every dataset.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import ImageFeaturesConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.media.items import IMAGE, Media, batches
from embsel_mlflow.models import image_features_forward as forward_module
from embsel_mlflow.models.fitted_media import FittedMediaModel
from embsel_mlflow.models.image_features_forward import FIT_FILE, ImageFeaturesForward

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

MODULE = "image_features_forward"
SETTINGS_FILE = "image_features.json"
_FIT_BATCH = 256  # images decoded at once while computing the fit's features


class ImageFeaturesModel(FittedMediaModel[ImageFeaturesForward, ImageFeaturesConfig]):
    """Unfitted until :meth:`for_dataset` (or loaded from a saved fit)."""

    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE})
    kind = "image_features"
    fit_name = "image feature"
    item_noun = "images"
    settings_file = SETTINGS_FILE
    fit_file = FIT_FILE
    non_parameters = ("scale",)  # PCA components and mean are the parameters

    @classmethod
    def checked_settings(cls, cfg: ModelConfig) -> ImageFeaturesConfig:
        return check_settings(cfg.image_features or ImageFeaturesConfig())

    @classmethod
    def load_saved(
        cls, cfg: ModelConfig, directory: Path, section: dict[str, Any]
    ) -> tuple[ModelConfig, ImageFeaturesForward]:
        forward = forward_module.load(directory, section)  # the saved settings as they are
        fields = {f.name for f in dataclasses.fields(ImageFeaturesConfig)}
        settings = ImageFeaturesConfig(**{k: v for k, v in section.items() if k in fields})
        return dataclasses.replace(
            cfg, image_features=settings, normalize=bool(section.get("normalize"))
        ), forward

    @staticmethod
    def saved_load_reason(err: BaseException) -> str:
        return str(err)

    def fit_items(self, data: TaskData) -> tuple[list[Media], str]:
        return _fit_items(data)

    def item_key(self, item: Media) -> bytes:
        return item.digest

    def key_settings(self) -> dict[str, Any]:
        return self.forward_settings()

    def fit(self, items: list[Media], settings: dict[str, Any], name: str, what: str) -> ImageFeaturesForward:
        return fit(items, settings, self._settings, name=name, what=what)

    def read_fit(self, path: Path, settings: dict[str, Any]) -> ImageFeaturesForward:
        with np.load(path, allow_pickle=False) as arrays:
            return ImageFeaturesForward(settings, arrays["mean"], arrays["components"], arrays["scale"])

    def write_fit(self, forward: ImageFeaturesForward, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            tmp.mkdir()
            forward.save(tmp)
            os.replace(tmp / FIT_FILE, path)
        finally:
            (tmp / FIT_FILE).unlink(missing_ok=True)
            if tmp.is_dir():
                tmp.rmdir()

    def save_fit(self, forward: ImageFeaturesForward, directory: Path) -> dict[str, Any]:
        forward.save(directory)
        requirements = ["pillow", "scikit-image"] if self._settings.features == "hog" else ["pillow"]
        return {
            "module": MODULE,
            "kind": self.kind,
            "modalities": [IMAGE],
            "requirements": requirements,
            **self.forward_settings(),
        }

    def source_name(self) -> str:
        what = "HOG" if self._settings.features == "hog" else "grayscale pixels"
        return f"{what} + PCA (numpy, scikit-learn)"

    def unfitted_dim(self) -> int:
        return self._settings.dim

    def fit_arrays(self, forward: ImageFeaturesForward) -> dict[str, np.ndarray]:
        return {"mean": forward.mean, "components": forward.components, "scale": forward.scale}


def check_settings(settings: ImageFeaturesConfig) -> ImageFeaturesConfig:
    """Refuse settings no fit can use, before any image is read (one line each)."""
    if settings.features not in forward_module.FEATURES:
        raise ConfigError(
            f"model.image_features.features={settings.features!r}: "
            f"use one of {', '.join(forward_module.FEATURES)}"
        )
    if settings.image_size < 1 or settings.dim < 1 or settings.max_fit_images < 2:
        raise ConfigError(
            "model.image_features: image_size and dim must be >= 1 and max_fit_images >= 2, got "
            f"{settings.image_size}, {settings.dim}, {settings.max_fit_images}"
        )
    if settings.features == "hog":
        cell, block = settings.hog_pixels_per_cell, settings.hog_cells_per_block
        if min(cell, block, settings.hog_orientations) < 1 or settings.image_size < cell * block:
            raise ConfigError(
                f"model.image_features: HOG needs image_size >= hog_pixels_per_cell x hog_cells_per_block "
                f"({cell} x {block}) and positive values; got image_size={settings.image_size}"
            )
    return settings


def fit(
    items: list[Media], settings: dict[str, Any], section: ImageFeaturesConfig, *, name: str, what: str
) -> ImageFeaturesForward:
    """Features of ``items`` (decoded a batch at a time), then a PCA of ``section.dim`` components."""
    from sklearn.decomposition import PCA

    from embsel_mlflow.media.decode import load_images

    if len(items) > section.max_fit_images:  # evenly spaced: deterministic, and covers the whole set
        picks = np.linspace(0, len(items) - 1, section.max_fit_images).round().astype(int)
        items = [items[i] for i in picks]
    if len(items) < 2:
        raise DataError(f"dataset '{name}': cannot fit image features on {len(items)} image(s) of its {what}")
    rows = [forward_module.features(load_images(batch), settings) for batch in batches(items, _FIT_BATCH)]
    matrix = np.concatenate(rows)
    # A PCA has at most min(samples, features) components; the last of `samples` has no variance.
    dim = max(1, min(section.dim, matrix.shape[0] - 1, matrix.shape[1]))
    pca = PCA(n_components=dim, random_state=section.seed).fit(matrix)
    scale = np.sqrt(np.maximum(pca.explained_variance_, 1e-12)) if section.whiten else np.ones(dim)
    return ImageFeaturesForward(settings, pca.mean_, pca.components_, scale)


def _fit_items(data: TaskData) -> tuple[list[Media], str]:
    family = data.family
    if family is None:
        raise DataError(
            f"image features cannot be fitted for dataset '{data.name}': it carries no task family"
        )
    items, what = family.fit_texts(data)
    images = [item for item in items if isinstance(item, Media) and item.modality == IMAGE]
    if len(images) != len(items):
        raise DataError(
            f"dataset '{data.name}' ({family.name}) gives no images to fit image features on: "
            "model.kind=image_features fits on the images of an image task"
        )
    # one fit row per distinct image: a file listed twice would count twice in the PCA
    return list({item.digest: item for item in images}.values()), what
