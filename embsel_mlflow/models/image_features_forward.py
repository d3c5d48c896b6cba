"""The classical image baseline's forward pass: grayscale pixels or HOG, then a fitted PCA.

One encode path for evaluation (``models/image_features.py``, which fits the PCA) and for the
served model: the pyfunc of a logged ``kind=image_features`` model ships this file beside itself
(``code_paths``) and calls :func:`load`, so it imports nothing of embsel_mlflow (numpy, Pillow
and, for HOG, scikit-image). The fit is plain arrays in an ``.npz`` (no pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE = "image"
PIXELS = "pixels"
HOG = "hog"
FEATURES = (PIXELS, HOG)
FIT_FILE = "image_features.npz"


def load(directory: str | Path, settings: dict[str, Any]) -> ImageFeaturesForward:
    """The fit saved in ``directory`` by :meth:`ImageFeaturesForward.save`."""
    with np.load(Path(directory) / FIT_FILE, allow_pickle=False) as arrays:
        return ImageFeaturesForward(settings, arrays["mean"], arrays["components"], arrays["scale"])


def features(images: list[Any], settings: dict[str, Any]) -> np.ndarray:
    """(len(images), features) float32 of RGB PIL images: grayscale, resized, then pixels or HOG."""
    from PIL import Image

    size = int(settings["image_size"])
    kind = settings.get("features", PIXELS)
    if kind not in FEATURES:
        raise ValueError(f"image features must be one of {FEATURES}, got {kind!r}")
    rows = []
    for image in images:
        gray = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(gray, dtype=np.float32) / 255.0
        rows.append(pixels.ravel() if kind == PIXELS else _hog(pixels, settings))
    if not rows:
        return np.empty((0, feature_count(settings)), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def feature_count(settings: dict[str, Any]) -> int:
    """How many features :func:`features` gives per image."""
    size = int(settings["image_size"])
    if settings.get("features", PIXELS) == PIXELS:
        return size * size
    cells = size // int(settings["hog_pixels_per_cell"])
    blocks = cells - int(settings["hog_cells_per_block"]) + 1
    return blocks * blocks * int(settings["hog_cells_per_block"]) ** 2 * int(settings["hog_orientations"])


def _hog(pixels: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    from skimage.feature import hog

    cell = int(settings["hog_pixels_per_cell"])
    block = int(settings["hog_cells_per_block"])
    return np.asarray(
        hog(
            pixels,
            orientations=int(settings["hog_orientations"]),
            pixels_per_cell=(cell, cell),
            cells_per_block=(block, block),
            block_norm="L2-Hys",
            feature_vector=True,
        ),
        dtype=np.float32,
    )


class ImageFeaturesForward:
    """Features minus the fit mean, projected on the PCA components (and divided by ``scale``)."""

    def __init__(
        self, settings: dict[str, Any], mean: np.ndarray, components: np.ndarray, scale: np.ndarray
    ) -> None:
        self.settings = dict(settings)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.components = np.asarray(components, dtype=np.float32)  # (dim, features)
        self.scale = np.asarray(scale, dtype=np.float32)  # (dim,): 1, or the component std (whiten)
        if self.components.shape[1] != self.mean.shape[0] or self.scale.shape[0] != self.components.shape[0]:
            raise ValueError(
                f"inconsistent image feature fit: mean {self.mean.shape}, components "
                f"{self.components.shape}, scale {self.scale.shape}"
            )
        if self.mean.shape[0] != feature_count(self.settings):
            raise ValueError(
                f"the fit has {self.mean.shape[0]} features "
                f"but its settings give {feature_count(self.settings)}"
            )

    @property
    def embedding_dim(self) -> int:
        return int(self.components.shape[0])

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray:
        """(len(inputs), dim) float32 of RGB PIL images."""
        if modality != IMAGE:
            raise ValueError(f"the image baseline embeds images, not {modality}")
        projected = (features(list(inputs), self.settings) - self.mean) @ self.components.T / self.scale
        if self.settings.get("normalize"):
            norms = np.linalg.norm(projected, axis=1, keepdims=True)
            projected = projected / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(projected, dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """The fit as plain arrays (``np.savez``, loaded with ``allow_pickle=False``)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        np.savez(Path(directory) / FIT_FILE, mean=self.mean, components=self.components, scale=self.scale)
