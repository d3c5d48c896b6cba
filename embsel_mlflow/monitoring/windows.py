"""Current windows: files, a directory with one file per window, or data configs.

A window is keyed by the digest of its content (every column, so relabelled rows are a new
window): monitoring the same window twice finds the first result instead of logging it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config import DataConfig, TableConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import family_of, get_family, load_task_data
from embsel_mlflow.monitoring.judged_queries import (
    check_judged_documents,
    is_judged_queries,
    judged_queries_data,
)

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import WindowFilesConfig
    from embsel_mlflow.data.task_data import TableInfo, TaskData

TEXT_ROLES = ("text", "s1", "s2")  # the columns whose texts are embedded, in this order
# The columns a window needs to be re-evaluated with the reference's task (its labels, scores)
# are its family's ``window_columns``.
ORDERS = ("name", "timestamp")


@dataclass
class Window:
    name: str
    texts: list[str]
    table: TableInfo  # as loaded (roles renamed): the modality guard and the digest read it
    timestamp: float  # seconds since the epoch: the window's place on the MLflow time axis
    quality_data: DataConfig | None = None  # how to re-evaluate it (None: unlabelled)
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = frame_digest(self.table.frame)


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a table's content (column names and every value, row order included)."""
    import pandas as pd

    digest = hashlib.sha256("\0".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:32]


def task_texts(data: TaskData) -> tuple[list[str], str | None]:
    """(texts, role) a model embeds for a task dataset, as its family says.

    Retrieval: its queries, in the "query" role (as evaluate encodes them); others: role None.
    """
    return family_of(data).monitor_texts(data.examples)


def frame_texts(frame: pd.DataFrame, where: str) -> list[str]:
    """The non-blank texts of a window's text columns; DataError when it has none."""
    from embsel_mlflow.data.tables import VISIBLE  # the data layer's own "empty text" rule

    roles = [role for role in TEXT_ROLES if role in frame.columns]
    if not roles:
        raise DataError(
            f"{where}: no text column (columns: {', '.join(map(str, frame.columns))}); name it 'text' "
            "or map one with current.table.columns.text=<column>"
        )
    texts = [
        str(v) for role in roles for v in frame[role].tolist() if isinstance(v, str) and VISIBLE.search(v)
    ]
    if not texts:
        raise DataError(f"{where}: the window is empty (no non-blank text); give a window with texts")
    return texts


def file_windows(cfg: WindowFilesConfig, reference: DataConfig, judged_dir: Path) -> list[Window]:
    """Windows from ``current.paths`` (in the order given) and ``current.dir`` (by name or time).

    Judged-query windows of a retrieval reference write their queries and qrels under ``judged_dir``.
    """
    from embsel_mlflow.data.loader import resolve_path

    if cfg.order_by not in ORDERS:
        raise ConfigError(f"current.order_by must be one of {', '.join(ORDERS)}, got {cfg.order_by!r}")
    paths = [resolve_path(path, cfg.root, "current.paths") for path in cfg.paths]
    listed: list[Path] = []
    if cfg.dir:
        directory = resolve_path(cfg.dir, cfg.root, "current.dir")
        if not directory.is_dir():
            raise DataError(f"current.dir: {directory} is not a directory; give the folder of window files")
        listed = sorted(p for p in directory.glob(cfg.pattern) if p.is_file() and not p.name.startswith("."))
        if not listed:
            raise DataError(f"current.dir: no file matches {cfg.pattern!r} in {directory}; add window files")
    windows = [_file_window(path, cfg, reference, judged_dir) for path in [*paths, *listed]]
    if cfg.dir and cfg.order_by == "timestamp":
        column = cfg.timestamp_column
        if not column:
            raise ConfigError("current.order_by=timestamp needs current.timestamp_column=<column>")
        given, from_dir = windows[: len(paths)], windows[len(paths) :]
        windows = given + sorted(from_dir, key=lambda w: (_first_time(w, column), w.name))
    judged = [
        (f"window {w.table.source}", w.table.frame)
        for w in windows
        if is_judged_queries(w.table.frame, reference)
    ]
    check_judged_documents(judged, reference)
    return windows


def _file_window(path: Path, cfg: WindowFilesConfig, reference: DataConfig, judged_dir: Path) -> Window:
    from embsel_mlflow.data.loader import load_table
    from embsel_mlflow.data.task_data import TableInfo

    table = dataclasses.replace(cfg.table, path=str(path))
    try:
        frame, source = load_table(table, root=cfg.root, where=f"window {path.name}")
    except DataError:
        if _at_most_a_header(path):  # the readers fail on a header alone: say what is wrong
            raise DataError(
                f"window {path}: the window is empty (no rows); give a window with texts"
            ) from None
        raise
    if len(frame) == 0:
        raise DataError(f"window {path}: the window is empty (no rows); give a window with texts")
    texts = frame_texts(frame, f"window {path}")
    digest = frame_digest(frame)
    quality_data: DataConfig | None
    if is_judged_queries(frame, reference):
        texts = list(dict.fromkeys(texts))  # drift on its distinct queries, not once per judged doc
        quality_data = judged_queries_data(frame, reference, path.stem, judged_dir / digest, f"window {path}")
    else:
        quality_data = _quality_data(frame, table, reference, path.stem)
    timestamp = (
        _last_time(frame, cfg.timestamp_column, path) if cfg.timestamp_column else path.stat().st_mtime
    )
    return Window(
        name=path.stem,
        texts=texts,
        table=TableInfo(role=path.stem, source=source, frame=frame),
        timestamp=timestamp,
        quality_data=quality_data,
        digest=digest,
    )


def _at_most_a_header(path: Path) -> bool:
    with path.open("rb") as handle:
        lines = [line for line in handle.readlines(1 << 16) if line.strip()]
    return len(lines) <= 1


def _times(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    import pandas as pd

    if column not in frame.columns:
        raise DataError(
            f"{where}: no timestamp column {column!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    times = pd.to_datetime(frame[column], utc=True, errors="coerce")
    if times.isna().all():
        raise DataError(
            f"{where}: column {column!r} holds no parseable timestamp (e.g. 2026-01-31T12:00:00Z)"
        )
    return times.dropna()


def _last_time(frame: pd.DataFrame, column: str, path: Path) -> float:
    return float(_times(frame, column, f"window {path}").max().timestamp())


def _first_time(window: Window, column: str) -> float:
    return float(_times(window.table.frame, column, f"window {window.table.source}").min().timestamp())


def _quality_data(
    frame: pd.DataFrame, table: TableConfig, reference: DataConfig, name: str
) -> DataConfig | None:
    """The reference data config with this window as its evaluation split, when it has the labels.

    Classification keeps the reference's train split (the classifier is fitted there, as evaluate does).
    """
    from embsel_mlflow.data.loader import with_reader_defaults

    needed = get_family(reference.task, dataset=reference.name).window_columns
    if needed is None or not all(role in frame.columns for role in needed):
        return None
    # the reference's reader options belong to its own files: pin them there, not on the window
    splits = {key: with_reader_defaults(value, reference.reader) for key, value in reference.splits.items()}
    splits[reference.eval_split] = table
    return dataclasses.replace(
        reference, name=f"{reference.name}@{name}", reader=TableConfig(), splits=splits, limit=None
    )


def data_windows(configs: dict[str, DataConfig], reference: DataConfig) -> list[Window]:
    """Windows given as data configs (``windows=[a,b]``): each is loaded as its task loads it."""
    import time

    windows = []
    for name, cfg in configs.items():
        data = load_task_data(cfg)
        texts, _ = task_texts(data)
        if not texts:
            raise DataError(f"window {name}: the window is empty (no texts); give a window with texts")
        scored = next((t for t in data.tables if t.role == data.split), data.tables[-1])
        same_task = str(cfg.task) == str(reference.task)
        windows.append(
            Window(
                name=name,
                texts=texts,
                table=scored,
                timestamp=time.time(),
                quality_data=cfg if same_task else None,
            )
        )
    return windows
