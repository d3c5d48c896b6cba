"""Calibration texts for int8 ranges: a configured file, or a non-evaluation split of the datasets.

Static int8 model quantization and int8 embeddings both need representative texts to set
their ranges. They come from ``model.variant.calibration.path`` or from the
``calibration.split`` (default ``train``) of the evaluated datasets, never from the split a
dataset is evaluated on: calibrating on the test texts would flatter the variant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    from embsel_mlflow.config import CalibrationConfig, DataConfig
    from embsel_mlflow.data.task_data import TaskData


@dataclass(frozen=True)
class CalibrationTexts:
    texts: list[str]
    source: str  # what was used, e.g. "stsb/train" or "/path/calibration.txt"

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.texts).encode("utf-8")).hexdigest()[:16]

    def describe(self) -> dict[str, str | int]:
        """What a run records about its calibration."""
        return {"source": self.source, "texts": len(self.texts), "sha256": self.digest}


def check_calibration_split(cfg: CalibrationConfig, datasets: Sequence[DataConfig]) -> None:
    """Refuse calibrating on a split that a dataset is evaluated on (before anything is loaded)."""
    if cfg.path:
        return
    for data in datasets:
        if cfg.split == data.eval_split:
            raise ConfigError(
                f"model.variant.calibration.split={cfg.split} is the evaluation split of '{data.name}': "
                "calibrating on test texts flatters the variant; use a train split or a file "
                "(model.variant.calibration.path=...)"
            )


def calibration_texts(
    cfg: CalibrationConfig, datasets: Sequence[DataConfig], *, load: Callable[..., TaskData] | None = None
) -> CalibrationTexts:
    """``cfg.size`` texts, evenly spaced over the file or the datasets' calibration split.

    ``load(data_cfg, split=...)`` loads a dataset (``families.load_task_data``: this layer is below it).
    """
    if cfg.size < 1:
        raise ConfigError(f"model.variant.calibration.size must be >= 1, got {cfg.size}")
    if cfg.path:
        return CalibrationTexts(_evenly(_read_file(Path(cfg.path)), cfg.size), str(cfg.path))
    check_calibration_split(cfg, datasets)
    usable = [data for data in datasets if cfg.split in data.splits]
    if not usable:
        names = ", ".join(data.name for data in datasets) or "none"
        raise ConfigError(
            f"int8 calibration needs texts: no dataset ({names}) has a '{cfg.split}' split; set "
            "model.variant.calibration.path=FILE (one text per line) or model.variant.calibration.split"
        )
    if load is None:
        raise TypeError("calibrating on a dataset split needs load=embsel_mlflow.families.load_task_data")
    texts: list[str] = []
    for data in usable:
        texts += _evenly(texts_of(load(data, split=cfg.split)), cfg.size)
    source = "+".join(f"{data.name}/{cfg.split}" for data in usable)
    return CalibrationTexts(_evenly(texts, cfg.size), source)


def texts_of(data: TaskData) -> list[str]:
    """The texts a model embeds for this task, as its family says (retrieval: the split's queries
    and the corpus)."""
    family = data.family
    if family is None:
        raise DataError(f"dataset '{data.name}' carries no task family to say which texts it embeds")
    return family.calibration_texts(data.examples)


def _read_file(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"calibration file {path} does not exist; fix model.variant.calibration.path")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".jsonl":
        lines = [str(json.loads(line)["text"]) for line in lines if line]
    texts = [line for line in lines if line]
    if not texts:
        raise DataError(f"calibration file {path} holds no text; one text per line (or jsonl with 'text')")
    return texts


def _evenly(texts: list[str], size: int) -> list[str]:
    if len(texts) <= size:
        return list(texts)
    return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, size)]
