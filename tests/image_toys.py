"""Test-only image pieces for the monitor and select media tests: real digits, a toy family, two kinds.

Until the real ``image_classification`` family and ``image_features`` kind are registered, the
media tests run the steps through these (registered by the tests only, as tests/test_families.py
and tests/test_candidate_kinds.py register theirs). They use the package's public media path:

- ``write_digits``: scikit-learn's bundled digits (1,797 real 8x8 images) as grayscale PNGs in
  the design's layout: ``train.csv`` (900), ``test.csv`` (597) and held-out windows of the last
  300 in ``windows/plain.csv``, ``windows/rotated.csv`` (rotated 90 degrees, ``images_rotated/``)
  and ``windows/noised.csv`` (strong Gaussian noise, ``images_noised/``); columns ``image,label,text``,
  image paths relative to the digits folder (``data.root``).
- ``ToyImageClassificationFamily``: MTEB's classification protocol (the built-in classification
  task) on images, read with ``data.tables.media``.
- ``toy_pixels`` (64 raw grayscale pixels at 8x8) and ``toy_pixel_pca`` (the same, then a PCA
  fitted per dataset on the family's fit inputs, never labels): both decode lazily through
  ``media.decode.load_images``, one batch at a time. Every fit is recorded in ``FITS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from embsel_mlflow.candidates import BuildContext, CandidateKind
from embsel_mlflow.config import ModelConfig
from embsel_mlflow.data.tables import Tables, head, media, texts
from embsel_mlflow.errors import ModelError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput, TextEncoder
from embsel_mlflow.families import TaskFamily
from embsel_mlflow.families.classification import (
    ClassificationExamples,
    ClassificationFamily,
    ClassificationTask,
)
from embsel_mlflow.media.items import IMAGE, Media, batches
from embsel_mlflow.models.identity import model_identity
from embsel_mlflow.models.resolve import ResolvedModel

TOY_FAMILY = "toy_image_classification"
PIXELS, PIXEL_PCA = "toy_pixels", "toy_pixel_pca"
SIDE = 8  # images are embedded at 8x8 grayscale (the digits' own size)
COMPONENTS = 16
WINDOWS = ("plain", "rotated", "noised")
NOISE_SIGMA = 80.0  # on the 0..255 scale: "strong" noise, clipped

# (model name, number of images fitted on, digest of their content): one entry per PCA fit
FITS: list[tuple[str, int, str]] = []


# --------------------------------------------------------------------------- the data


def write_digits(directory: Path) -> Path:
    """The design's digits layout under ``directory`` (see the module docstring); returns it."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(pixels))
    for sub in ("images", "images_rotated", "images_noised", "windows"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(1)

    def rows(indices: np.ndarray, folder: str = "images") -> pd.DataFrame:
        labels = [str(int(digits.target[i])) for i in indices]
        return pd.DataFrame(
            {
                "image": [f"{folder}/{i}.png" for i in indices],
                "label": labels,
                "text": [f"a handwritten digit {label}" for label in labels],
            }
        )

    for i in range(len(pixels)):
        Image.fromarray(pixels[i], mode="L").save(directory / "images" / f"{i}.png")
    held = order[-300:]
    for i in held:
        Image.fromarray(np.rot90(pixels[i]).copy(), mode="L").save(directory / "images_rotated" / f"{i}.png")
        noised = pixels[i].astype(np.float64) + noise.normal(0.0, NOISE_SIGMA, pixels[i].shape)
        Image.fromarray(noised.round().clip(0, 255).astype(np.uint8), mode="L").save(
            directory / "images_noised" / f"{i}.png"
        )
    rows(order[:900]).to_csv(directory / "train.csv", index=False)
    rows(order[900:1497]).to_csv(directory / "test.csv", index=False)
    rows(held).to_csv(directory / "windows" / "plain.csv", index=False)
    rows(held, "images_rotated").to_csv(directory / "windows" / "rotated.csv", index=False)
    rows(held, "images_noised").to_csv(directory / "windows" / "noised.csv", index=False)
    return directory


def write_conf(conf: Path, digits: Path) -> None:
    """``conf/data/toy_digits.yaml`` and ``conf/model/{toy_pixels,toy_pixel_pca}.yaml`` under ``conf``."""
    (conf / "data").mkdir(parents=True, exist_ok=True)
    (conf / "model").mkdir(parents=True, exist_ok=True)
    (conf / "data" / "toy_digits.yaml").write_text(
        f"name: toy_digits\ntask: {TOY_FAMILY}\nroot: {digits}\n"
        "splits:\n  train: {path: train.csv}\n  test: {path: test.csv}\n",
        encoding="utf-8",
    )
    for kind in (PIXELS, PIXEL_PCA):
        (conf / "model" / f"{kind}.yaml").write_text(
            f"name: {kind}\nname_or_path: {kind}\nkind: {kind}\n", encoding="utf-8"
        )


# --------------------------------------------------------------------------- the family


class ToyImageClassificationTask(ClassificationTask):
    """MTEB's classification protocol on image embeddings; the per-item table names the image files."""

    task_type: ClassVar[str] = TOY_FAMILY

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        output = super()._run(encoder)
        assert output.per_item is not None
        output.per_item = output.per_item.rename(columns={"text": "image"})
        output.per_item["image"] = [item.source for item in self.examples.test_texts]
        return output


class ToyImageClassificationFamily(ClassificationFamily):
    """Classification whose items are images: the ``image`` column, read by ``data.tables.media``."""

    name: ClassVar[str] = TOY_FAMILY
    task_class: ClassVar[type[EvalTask]] = ToyImageClassificationTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image",)
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "label")
    pair_kind = None

    def build(self, tables: Tables, split: str, limit: int | None) -> ClassificationExamples:
        train = tables.split(tables.cfg.train_split, ["image", "label"])
        train_frame, train_items = media(tables, train.frame, "image", train, IMAGE)
        test = tables.split(split, ["image", "label"])
        frame, test_items = media(tables, head(tables, test, limit), "image", test, IMAGE)
        return ClassificationExamples(
            train_texts=list(train_items),  # type: ignore[arg-type]  # Media in place of texts
            train_labels=texts(train_frame, "label", train, what="label"),
            test_texts=list(test_items),  # type: ignore[arg-type]
            test_labels=texts(frame, "label", test, what="label"),
        )


# --------------------------------------------------------------------------- the kinds


def pixels(items: Sequence[Media], batch_size: int = 64) -> np.ndarray:
    """(n, 64) grayscale pixels in [0, 1], decoded one batch at a time."""
    from embsel_mlflow.media.decode import load_images

    rows = []
    for batch in batches(list(items), batch_size):
        for image in load_images(batch):
            gray = image.convert("L").resize((SIDE, SIDE))
            rows.append(np.asarray(gray, dtype=np.float32).ravel() / 255.0)
    return np.stack(rows) if rows else np.empty((0, SIDE * SIDE), dtype=np.float32)


@dataclass(frozen=True)
class PcaFit:
    mean: np.ndarray
    components: np.ndarray  # (k, 64)
    key: str  # content digest of the fitted images


class PixelModel:
    """Raw pixels (``toy_pixels``), or pixels projected on a PCA fitted per dataset (``toy_pixel_pca``)."""

    registrable = False  # nothing saved to serve: monitor accepts it only fitted per dataset
    device = "cpu"
    disk_size_bytes = None

    def __init__(self, cfg: ModelConfig, *, fitted: bool, fit: PcaFit | None = None) -> None:
        self.config = cfg
        self._fitted_kind = fitted
        self._fit = fit

    def encode(self, items: Sequence[Any], *, role: str | None = None, show_progress: bool = False) -> Any:
        if self._fitted_kind and self._fit is None:
            raise ModelError(f"model '{self.config.name}' is not fitted yet: call for_dataset(data) first")
        matrix = pixels(items)
        if self._fit is not None:
            matrix = (matrix - self._fit.mean) @ self._fit.components.T
        return matrix.astype(np.float32)

    def for_dataset(self, data: Any) -> PixelModel:
        if not self._fitted_kind:
            return self
        items, _ = data.family.fit_texts(data)
        matrix = pixels(items)
        key = hashlib.sha256(b"".join(item.digest for item in items)).hexdigest()[:16]
        mean = matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(matrix - mean, full_matrices=False)
        FITS.append((self.config.name, len(items), key))
        return PixelModel(self.config, fitted=True, fit=PcaFit(mean, vt[:COMPONENTS], key))

    @property
    def fit_key(self) -> str | None:
        return self._fit.key if self._fit is not None else None

    @property
    def num_parameters(self) -> int:
        return int(self._fit.components.size) if self._fit is not None else 0

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel(self.config.name_or_path, "toy", self.fit_key)

    @property
    def embedding_dim(self) -> int:
        return COMPONENTS if self._fitted_kind else SIDE * SIDE

    @property
    def identity(self) -> dict[str, Any]:
        # the fit is part of the identity: the embedding cache never mixes two fits
        return model_identity(self.config, self.source, {"side": SIDE, "fit": self.fit_key})


class PixelKind(CandidateKind):
    modalities = frozenset({IMAGE})

    def __init__(self, name: str, *, fitted: bool) -> None:
        self.name = name
        self.fitted_per_dataset = fitted

    def build(self, cfg: ModelConfig, context: BuildContext) -> PixelModel:
        return PixelModel(cfg, fitted=self.fitted_per_dataset)


def toy_family() -> TaskFamily:
    return ToyImageClassificationFamily()


def toy_kinds() -> dict[str, CandidateKind]:
    return {PIXELS: PixelKind(PIXELS, fitted=False), PIXEL_PCA: PixelKind(PIXEL_PCA, fitted=True)}
