"""``conf/data/``: a dataset for one task family (``data/``, ``families/``): its tables and columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from omegaconf import MISSING

from embsel_mlflow.config.evaluation import EvaluationConfig, dataset_evaluation
from embsel_mlflow.errors import ConfigError

# data.on_missing: what a row with a missing label or score does.
ON_MISSING = ("error", "skip")


class TaskType(StrEnum):
    retrieval = "retrieval"
    sts = "sts"
    pair_classification = "pair_classification"
    classification = "classification"
    clustering = "clustering"
    image_classification = "image_classification"
    image_clustering = "image_clustering"
    zero_shot_image_classification = "zero_shot_image_classification"
    image_to_text_retrieval = "image_to_text_retrieval"
    text_to_image_retrieval = "text_to_image_retrieval"
    audio_classification = "audio_classification"
    audio_clustering = "audio_clustering"
    audio_to_text_retrieval = "audio_to_text_retrieval"
    text_to_audio_retrieval = "text_to_audio_retrieval"


@dataclass
class TableConfig:
    """One table: local files (csv/tsv/json/jsonl/parquet, or any line format via a regex) or a hub split.

    Reader options left as None inherit from ``data.reader``.
    """

    # A file, a glob (``sick/SICK_*.txt``) or a list of files/globs, relative to data.root unless
    # absolute; several files are read with the same options and joined in order (globs sorted).
    path: Any = None
    hub: str | None = None  # Hugging Face dataset id (needs network)
    subset: str | None = None  # hub dataset config name
    split: str | None = None  # hub dataset split
    format: str | None = None  # csv | tsv | json | jsonl | parquet | regex; None = from the file extension
    delimiter: str | None = None  # one character; "\\t" (backslash t, as typed on a command line) = tab
    header: bool | None = None  # False: the file has no header row (give column_names)
    column_names: list[str] | None = None
    quoting: str | None = None  # minimal | all | nonnumeric | none ("none" for files with stray quotes)
    encoding: str | None = None  # e.g. utf-8, utf-8-sig (strips a BOM), latin-1
    # format=regex: a Python regex matched against each whole non-blank line; its named groups
    # are the columns, e.g. TREC's '(?P<label>[^:]+):(?P<fine>\\S+) (?P<text>.+)'.
    pattern: str | None = None
    # Task role -> column in this table, e.g. {s1: sentence1, s2: sentence2, score: score}.
    columns: dict[str, str] = field(default_factory=dict)
    # A table without an id column (a corpus whose passages are known by their row): a row's id
    # is its number, counted from this (0 or 1), rows counted after the header. None: the id column.
    row_ids: int | None = None


@dataclass
class MediaConfig:
    """Limits on image and audio inputs (``media/``): a larger input is refused or skipped, never decoded."""

    max_image_pixels: int = 40_000_000  # width x height, read from the header
    max_audio_seconds: float = 600.0  # read from the header
    max_file_mb: float = 200.0  # any media file larger than this is refused before it is read


@dataclass
class DataConfig:
    """A dataset for one task.

    ``splits`` maps a split name to the table that defines it. For retrieval the split table
    is the qrels, and ``corpus`` and ``queries`` hold the BEIR corpus and queries.
    """

    name: str = MISSING
    task: str = MISSING  # a registered task family (embsel_mlflow.families), checked when loaded
    root: str = "."
    eval_split: str = "test"
    train_split: str = "train"  # classification: the split the classifier is fitted on
    reader: TableConfig = field(default_factory=TableConfig)  # defaults shared by every table
    # Split name -> TableConfig. Typed Any for OmegaConf, which refuses a plain dict assigned to a
    # new key of a Dict[str, TableConfig] (``+data.splits.dev={path: dev.csv}``); each value is
    # checked against TableConfig when the config is built (__post_init__), unknown keys refused.
    splits: dict[str, Any] = field(default_factory=dict)
    corpus: TableConfig | None = None
    queries: TableConfig | None = None
    limit: int | None = None  # keep the first N eval examples (quick runs); None = all
    # Image and audio columns: a missing, corrupt, empty or over-limit file is one error line
    # naming the row and file ("error"), or the row is left out, counted and logged ("skip").
    on_bad_media: str = "error"
    # A split row with a missing label or score (an empty cell): one error line ("error"), or the
    # row is left out, counted and logged as a ``missing_labels_skipped`` warning ("skip").
    on_missing: str = "error"
    # This dataset's evaluation settings, over the step's ``evaluation`` (e.g. {samples_per_label:
    # 32} for a dataset MTEB scores with 32): evaluate, select, train and monitor all apply them.
    evaluation: dict[str, Any] = field(default_factory=dict)
    media: MediaConfig = field(default_factory=MediaConfig)
    # zero_shot_image_classification: the text each class is embedded as ({label}: the class name).
    label_template: str = "a photo of a {label}."

    def __post_init__(self) -> None:
        if self.task in TaskType.__members__:  # a built-in family keeps its TaskType name
            self.task = TaskType(self.task)
        self.splits = {name: _table(value, f"data.splits.{name}") for name, value in self.splits.items()}
        if self.on_missing not in ON_MISSING:
            choices = ", ".join(ON_MISSING)
            raise ConfigError(f"data.on_missing must be one of {choices}, got {self.on_missing!r}")
        dataset_evaluation(EvaluationConfig(), self.evaluation, self.name)  # a bad setting: one line now


def _table(value: Any, where: str) -> TableConfig:
    """``value`` (a TableConfig, or a mapping from YAML or an override) as a checked TableConfig."""
    if isinstance(value, TableConfig):
        return value
    from omegaconf import OmegaConf

    try:
        merged = OmegaConf.merge(OmegaConf.structured(TableConfig), value or {})
        return cast("TableConfig", OmegaConf.to_object(merged))
    except Exception as exc:  # OmegaConf's ValidationError, ConfigKeyError, ...
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {reason}; a split is a table (path, columns, format, ...)") from exc
