"""Training pairs from the same task datasets ``evaluate`` reads, and the validation hold-out.

Each task family builds its own pairs (``TaskFamily.pair_kind`` / ``pair_columns``) and its
hold-out (``TaskFamily.hold_out``), e.g.:

- retrieval train qrels -> (anchor=query, positive=relevant document)
- STS -> (sentence1, sentence2, score scaled to [0, 1])
- pair classification -> (sentence1, sentence2, label 0/1)
- classification -> (anchor, positive) drawn within each class
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import FAMILIES, PairKind, family_of

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "KIND_COLUMNS",
    "MEDIA_TEXT",
    "TASK_PAIRS",
    "PairKind",
    "TrainPairs",
    "build_pairs",
    "check_text_pairs",
    "hold_out",
]

# The pair kind of image and audio retrieval families (``PairKind.media_text``: a media item and its
# caption). They train a dual encoder contrastively (``training/contrastive.py``), not a text model.
MEDIA_TEXT = "media_text"


class _TaskPairs(Mapping[str, PairKind]):
    """Task -> the pairs build_pairs makes of its train split, read from the families (clustering: none)."""

    def __getitem__(self, task: str) -> PairKind:
        family = FAMILIES.get(str(task))
        if family is None or family.pair_kind is None:
            raise KeyError(task)
        return family.pair_kind

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, family in FAMILIES.items() if family.pair_kind is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)


TASK_PAIRS: Mapping[str, PairKind] = _TaskPairs()

# What each kind holds, for messages.
KIND_COLUMNS = {
    PairKind.positive: "(anchor, positive) pairs",
    PairKind.scored: "scored pairs (s1, s2, score) without positives",
    PairKind.labelled: "labelled pairs (s1, s2, label 0/1)",
    MEDIA_TEXT: "(image or audio, caption) pairs",
}


@dataclass
class TrainPairs:
    """Training examples as columns (text columns first, a ``score`` / ``label`` column last)."""

    kind: PairKind
    columns: dict[str, list[Any]]
    source: str  # e.g. "scifact/train (retrieval)"

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def text_columns(self) -> list[str]:
        return [name for name in self.columns if name not in ("score", "label")]

    def to_dataset(self) -> Dataset:
        from datasets import Dataset

        return Dataset.from_dict(self.columns)

    def head(self, count: int) -> TrainPairs:
        return dataclasses.replace(self, columns={k: v[:count] for k, v in self.columns.items()})


def build_pairs(data: TaskData, *, pairs_per_class: int = 50, seed: int = 42) -> TrainPairs:
    """The training pairs of ``data`` (loaded from the train split) for its task."""
    family = family_of(data)
    source = f"{data.name}/{data.split} ({data.task})"
    if family.pair_kind is None:
        raise ConfigError(
            f"dataset '{data.name}': {data.task} data has no training pairs; train on a retrieval, "
            "STS, pair classification or classification dataset"
        )
    columns = family.pair_columns(data.examples, pairs_per_class=pairs_per_class, seed=seed)
    return TrainPairs(family.pair_kind, columns, source)


def check_text_pairs(pairs: TrainPairs) -> None:
    """Text models train on text pairs: pairs of images (e.g. within a class) are refused, in one line."""
    from embsel_mlflow.media.items import Media

    for values in pairs.columns.values():
        if values and isinstance(values[0], Media):
            raise ConfigError(
                f"{pairs.source} gives pairs of {values[0].modality}s, which no training loss here takes: "
                "train a dual encoder (model.kind=clip) on image–text pairs (data.task "
                "image_to_text_retrieval or text_to_image_retrieval)"
            )


def hold_out(data: TaskData, fraction: float, seed: int) -> tuple[TaskData, TaskData]:
    """(train, validation): ``fraction`` of the items (queries for retrieval, pairs, texts) held out.

    The validation part is a task of its own, scored by the same evaluator as the test split.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"train.validation_fraction must be between 0 and 1 (exclusive), got {fraction}; "
            "or set train.validation_split to a split of the data config"
        )
    rng = np.random.default_rng(seed)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        held = max(1, round(count * fraction))
        if count - held < 1:
            raise DataError(
                f"dataset '{data.name}' ({data.split}): {count} item(s) cannot be split into training and "
                "validation; add data or set train.validation_split"
            )
        order = rng.permutation(count)
        return np.sort(order[held:]), np.sort(order[:held])

    parts = family_of(data).hold_out(data.examples, split)
    if parts is None:
        raise ConfigError(f"dataset '{data.name}': no validation hold-out for {data.task} data")
    train_part = dataclasses.replace(data, examples=parts[0], split=data.split)
    validation = dataclasses.replace(data, examples=parts[1], split="validation", tables=[])
    return train_part, validation
