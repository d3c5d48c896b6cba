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
import hashlib
import json
import logging
import os
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import ImageFeaturesConfig
from embsel_mlflow.errors import ConfigError, DataError, ModelError
from embsel_mlflow.media.items import IMAGE, Media, batches
from embsel_mlflow.models import image_features_forward as forward_module
from embsel_mlflow.models.base import FITTED
from embsel_mlflow.models.image_features_forward import FIT_FILE, ImageFeaturesForward
from embsel_mlflow.models.media_model import MediaModel
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

log = logging.getLogger(__name__)

MODULE = "image_features_forward"
SETTINGS_FILE = "image_features.json"
_FIT_BATCH = 256  # images decoded at once while computing the fit's features


class ImageFeaturesModel(MediaModel):
    """Unfitted until :meth:`for_dataset` (or loaded from a saved fit)."""

    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE})
    device = "cpu"

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        models_dir: Path | None = None,
        forward: ImageFeaturesForward | None = None,
        fitted_on: str = "",
        key: str | None = None,
        saved: bool = False,
    ) -> None:
        self._cfg = cfg
        self._settings = check_settings(cfg.image_features or ImageFeaturesConfig())
        self._models_dir = models_dir
        self.forward = forward
        self._fitted_on = fitted_on
        self._key = key
        self._saved = saved  # loaded from a saved fit: for_dataset keeps it

    @classmethod
    def from_saved(cls, cfg: ModelConfig, directory: Path) -> ImageFeaturesModel:
        """The fit ``save_serving`` wrote in ``directory`` (its own settings win over ``cfg``'s)."""
        try:
            settings = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
            forward = forward_module.load(directory, settings)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ModelError(f"cannot load the image feature fit in {directory}: {err}") from err
        fields = {f.name for f in dataclasses.fields(ImageFeaturesConfig)}
        section = ImageFeaturesConfig(**{k: v for k, v in settings.items() if k in fields})
        cfg = dataclasses.replace(cfg, image_features=section, normalize=bool(settings.get("normalize")))
        key = hashlib.sha256((directory / FIT_FILE).read_bytes()).hexdigest()
        return cls(cfg, forward=forward, fitted_on=f"saved fit {directory}", key=key, saved=True)

    @property
    def registrable(self) -> bool:  # type: ignore[override]
        """Once fitted: the fit is what gets logged and served."""
        return self.forward is not None

    def for_dataset(self, data: TaskData) -> ImageFeaturesModel:
        """A copy fitted on ``data``'s images (see the module docstring); a saved fit as it is."""
        if self._saved:
            return self
        items, what = _fit_items(data)
        settings = self.forward_settings()
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for item in items:
            digest.update(item.digest)
        key = digest.hexdigest()
        path = self._models_dir / "image_features" / f"{key}.npz" if self._models_dir is not None else None
        forward = _load_fit(path, settings) if path is not None and path.is_file() else None
        if forward is None:
            forward = fit(items, settings, self._settings, name=data.name, what=what)
            if path is not None:
                _keep(forward, path)
        return ImageFeaturesModel(
            self._cfg,
            models_dir=self._models_dir,
            forward=forward,
            fitted_on=f"{data.name} {what} ({len(items)} images)",
            key=key,
        )

    def forward_settings(self) -> dict[str, Any]:
        """What ``image_features_forward`` reads (the kind's settings and ``normalize``)."""
        return {**dataclasses.asdict(self._settings), "normalize": bool(self._cfg.normalize)}

    def encode(self, texts: Any, *, role: str | None = None, show_progress: bool = False) -> np.ndarray:
        if self.forward is None:
            raise ModelError(
                f"image feature model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first"
            )
        return super().encode(texts, role=role, show_progress=show_progress)

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """The fit (``.npz``) and its settings under ``directory``; the serving settings."""
        if self.forward is None:
            raise ModelError(f"image feature model '{self._cfg.name}' is not fitted: nothing to save")
        self.forward.save(directory)
        settings = self.forward_settings()
        (Path(directory) / SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
        requirements = ["pillow", "scikit-image"] if self._settings.features == "hog" else ["pillow"]
        return {
            "module": MODULE,
            "kind": "image_features",
            "modalities": [IMAGE],
            "requirements": requirements,
            **settings,
        }

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'digits train split (900 images)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        what = "HOG" if self._settings.features == "hog" else "grayscale pixels"
        return ResolvedModel(f"{what} + PCA (numpy, scikit-learn)", FITTED, self._key)

    @property
    def embedding_dim(self) -> int:
        return self.forward.embedding_dim if self.forward is not None else self._settings.dim

    @property
    def num_parameters(self) -> int:
        """PCA components and mean (0 before fitting)."""
        if self.forward is None:
            return 0
        return int(self.forward.components.size + self.forward.mean.size)

    @property
    def disk_size_bytes(self) -> int | None:
        if self.forward is None:
            return None
        return int(self.forward.components.nbytes + self.forward.mean.nbytes + self.forward.scale.nbytes)

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._settings)
        identity["fitted_on"] = self._fitted_on
        return identity


def saved_fit_dir(name_or_path: str | None) -> Path | None:
    """``name_or_path`` as a directory holding a saved fit, or None (then the model is fitted per dataset)."""
    if not name_or_path:
        return None
    directory = Path(name_or_path).expanduser()
    return directory if (directory / FIT_FILE).is_file() and (directory / SETTINGS_FILE).is_file() else None


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


def _keep(forward: ImageFeaturesForward, path: Path) -> None:
    """Save a fit atomically (a concurrent twin may write the same file); a failure only costs a refit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        tmp.mkdir()
        forward.save(tmp)
        os.replace(tmp / FIT_FILE, path)
    except OSError as err:
        log.warning("could not keep the image feature fit in %s: %s", path, err)
    finally:
        (tmp / FIT_FILE).unlink(missing_ok=True)
        if tmp.is_dir():
            tmp.rmdir()


def _load_fit(path: Path, settings: dict[str, Any]) -> ImageFeaturesForward | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return ImageFeaturesForward(settings, arrays["mean"], arrays["components"], arrays["scale"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable image feature fit %s: %s", path, err)
        return None
