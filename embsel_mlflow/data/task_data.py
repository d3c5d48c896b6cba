"""In-memory task datasets: what the loader produces and the evaluation tasks consume.

One dataclass per task schema. They hold plain Python lists and numpy arrays so that the
evaluation code never depends on how (or from where) the data was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import TaskType

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class DataWarning:
    """Data that makes a metric questionable (not meaningless): logged on the run with its count.

    ``code`` is a stable name (e.g. ``duplicate_qrels``), ``message`` one line saying what was
    found, where, and what it does to the scores.
    """

    code: str
    message: str
    count: int

    def to_dict(self) -> dict[str, str | int]:
        return {"code": self.code, "count": self.count, "message": self.message}


@dataclass
class TableInfo:
    """Provenance of one loaded table, logged to MLflow as a run input."""

    role: str  # e.g. "test", "train", "corpus", "queries", "qrels/test"
    source: str  # resolved file path, or hub id
    frame: pd.DataFrame  # rows as loaded, columns renamed to task roles


@dataclass
class STSExamples:
    s1: list[str]
    s2: list[str]
    scores: np.ndarray  # float64 gold similarity


@dataclass
class PairClassificationExamples:
    s1: list[str]
    s2: list[str]
    labels: np.ndarray  # int64, 1 = positive pair


@dataclass
class ClassificationExamples:
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


@dataclass
class ClusteringExamples:
    texts: list[str]
    labels: list[str]


@dataclass
class RetrievalExamples:
    corpus: dict[str, str]  # doc id -> text ("title text" when a title exists)
    queries: dict[str, str]  # query id -> text, only queries that appear in the qrels
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}


Examples = (
    STSExamples | PairClassificationExamples | ClassificationExamples | ClusteringExamples | RetrievalExamples
)


@dataclass
class TaskData:
    name: str
    task: TaskType
    split: str  # the evaluation split
    examples: Examples
    tables: list[TableInfo] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)  # found while loading
