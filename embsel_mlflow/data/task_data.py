"""In-memory task datasets: what the loader produces and the evaluation tasks consume.

Generic: each task family (``embsel_mlflow.families``) defines its own examples dataclass, of
plain Python lists and numpy arrays, so the evaluation code never depends on how (or from
where) the data was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
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


class Family(Protocol):
    """What the lower layers (models) ask a dataset's task family, without importing the families.

    The full interface is ``embsel_mlflow.families.TaskFamily``; :class:`TaskData` carries the object.
    """

    @property
    def name(self) -> str: ...

    @property
    def ranks_documents(self) -> bool:  # its evaluation ranks documents (retrieval): rankers apply
        ...

    def fit_texts(self, data: TaskData) -> tuple[list[str], str]: ...

    def calibration_texts(self, examples: Any) -> list[str]: ...


@dataclass
class TaskData:
    """A loaded task dataset; ``family`` is its task family object (set by ``families.load_task_data``)."""

    name: str
    task: str  # the family's name (``data.task``)
    split: str  # the evaluation split
    examples: Any  # the family's examples dataclass
    tables: list[TableInfo] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)  # found while loading
    evaluation: dict[str, Any] = field(default_factory=dict)  # the dataset's settings (data.evaluation)
    family: Family | None = field(default=None, repr=False, compare=False)
