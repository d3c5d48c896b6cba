"""Training pairs from the same task datasets ``evaluate`` reads, and the validation hold-out.

- retrieval train qrels -> (anchor=query, positive=relevant document)
- STS -> (sentence1, sentence2, score scaled to [0, 1])
- pair classification -> (sentence1, sentence2, label 0/1)
- classification -> (anchor, positive) drawn within each class
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config.schema import TaskType
from embsel_mlflow.data.task_data import (
    ClassificationExamples,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    TaskData,
)
from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    from datasets import Dataset


class PairKind(StrEnum):
    positive = "positive"  # (anchor, positive[, negative_1, ...]): in-batch negatives
    scored = "scored"  # (sentence1, sentence2, score in [0, 1])
    labelled = "labelled"  # (sentence1, sentence2, label 0/1)


# The pairs build_pairs makes of each task's train split (clustering data has none).
TASK_PAIRS = {
    TaskType.retrieval: PairKind.positive,
    TaskType.sts: PairKind.scored,
    TaskType.pair_classification: PairKind.labelled,
    TaskType.classification: PairKind.positive,
}

# What each kind holds, for messages.
KIND_COLUMNS = {
    PairKind.positive: "(anchor, positive) pairs",
    PairKind.scored: "scored pairs (s1, s2, score) without positives",
    PairKind.labelled: "labelled pairs (s1, s2, label 0/1)",
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
    examples = data.examples
    source = f"{data.name}/{data.split} ({data.task.value})"
    if isinstance(examples, RetrievalExamples):
        anchors, positives = [], []
        for query_id, judged in examples.qrels.items():
            for doc_id, relevance in judged.items():
                if relevance > 0 and doc_id in examples.corpus and query_id in examples.queries:
                    anchors.append(examples.queries[query_id])
                    positives.append(examples.corpus[doc_id])
        return TrainPairs(PairKind.positive, {"anchor": anchors, "positive": positives}, source)
    if isinstance(examples, STSExamples):
        scores = np.asarray(examples.scores, dtype=np.float64)
        low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
        scaled = (scores - low) / (high - low) if high > low else np.zeros_like(scores)
        columns = {"sentence1": list(examples.s1), "sentence2": list(examples.s2), "score": scaled.tolist()}
        return TrainPairs(PairKind.scored, columns, source)
    if isinstance(examples, PairClassificationExamples):
        labels = [int(label) for label in np.asarray(examples.labels)]
        columns = {"sentence1": list(examples.s1), "sentence2": list(examples.s2), "label": labels}
        return TrainPairs(PairKind.labelled, columns, source)
    if isinstance(examples, ClassificationExamples):
        return _within_class_pairs(examples.train_texts, examples.train_labels, pairs_per_class, seed, source)
    raise ConfigError(
        f"dataset '{data.name}': {data.task.value} data has no training pairs; train on a retrieval, "
        "STS, pair classification or classification dataset"
    )


def _within_class_pairs(
    texts: list[str], labels: list[str], per_class: int, seed: int, source: str
) -> TrainPairs:
    """(anchor, positive) pairs of distinct texts of the same class, ``per_class`` per class at most."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels, strict=True):
        if text not in by_class[label]:
            by_class[label].append(text)
    anchors, positives = [], []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            continue
        for _ in range(per_class):
            first, second = rng.choice(len(members), size=2, replace=False)
            anchors.append(members[first])
            positives.append(members[second])
    return TrainPairs(PairKind.positive, {"anchor": anchors, "positive": positives}, source)


def hold_out(data: TaskData, fraction: float, seed: int) -> tuple[TaskData, TaskData]:
    """(train, validation): ``fraction`` of the items (queries for retrieval, pairs, texts) held out.

    The validation part is a task of its own, scored by the same evaluator as the test split.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"train.validation_fraction must be between 0 and 1 (exclusive), got {fraction}; "
            "or set train.validation_split to a split of the data config"
        )
    examples = data.examples
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

    parts: tuple[Any, Any]
    if isinstance(examples, RetrievalExamples):
        query_ids = list(examples.qrels)
        keep, held = split(len(query_ids))

        def subset(indices: np.ndarray) -> RetrievalExamples:
            ids = [query_ids[i] for i in indices]
            return RetrievalExamples(
                corpus=examples.corpus,
                queries={q: examples.queries[q] for q in ids if q in examples.queries},
                qrels={q: examples.qrels[q] for q in ids},
            )

        parts = subset(keep), subset(held)
    elif isinstance(examples, STSExamples | PairClassificationExamples):
        keep, held = split(len(examples.s1))
        field = "scores" if isinstance(examples, STSExamples) else "labels"

        def rows(indices: np.ndarray) -> Any:
            values = np.asarray(getattr(examples, field))[indices]
            columns: dict[str, Any] = {
                "s1": [examples.s1[i] for i in indices],
                "s2": [examples.s2[i] for i in indices],
                field: values,
            }
            return type(examples)(**columns)

        parts = rows(keep), rows(held)
    elif isinstance(examples, ClassificationExamples):
        keep, held = split(len(examples.train_texts))
        texts, labels = examples.train_texts, examples.train_labels
        train_texts, train_labels = [texts[i] for i in keep], [labels[i] for i in keep]
        parts = (
            ClassificationExamples(train_texts, train_labels, [], []),
            ClassificationExamples(
                train_texts, train_labels, [texts[i] for i in held], [labels[i] for i in held]
            ),
        )
    else:
        raise ConfigError(f"dataset '{data.name}': no validation hold-out for {data.task.value} data")
    train_part = dataclasses.replace(data, examples=parts[0], split=data.split)
    validation = dataclasses.replace(data, examples=parts[1], split="validation", tables=[])
    return train_part, validation
