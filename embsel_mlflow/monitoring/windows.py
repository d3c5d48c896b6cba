"""Current windows: files, a directory with one file per window, or data configs.

A window is keyed by the digest of its content (every column, so relabelled rows are a new
window; for image and audio windows, the content hash of every file too): monitoring the same
window twice finds the first result instead of logging it again.

Which columns of a window file are embedded is what the reference's task family declares
(:func:`window_roles`). Image and audio columns hold paths relative to the reference's
``data.root`` (the same root its own tables use, so a labelled window re-scored as the
reference's evaluation split reads the same files), checked exactly as the data loader checks
them (``data.tables.media``: inside data.root, header read, content hashed, limits,
``data.on_bad_media``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config import DataConfig, TableConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import family_of, get_family, load_task_data
from embsel_mlflow.media.items import AUDIO, IMAGE, TEXT, Media
from embsel_mlflow.monitoring.judged_queries import (
    check_judged_documents,
    is_judged_queries,
    judged_queries_data,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from embsel_mlflow.config import WindowFilesConfig
    from embsel_mlflow.data.task_data import TableInfo, TaskData
    from embsel_mlflow.families import TaskFamily

# The columns a window needs to be re-evaluated with the reference's task (its labels, scores)
# are its family's ``window_columns``; the columns it embeds, :func:`window_roles`.
ORDERS = ("name", "timestamp")
log = logging.getLogger("embsel.monitor")
# The column roles of media paths (the families' names for them) and their modality.
MEDIA_ROLES = {IMAGE: IMAGE, AUDIO: AUDIO}
# What a window's items are called in messages and metric names, by modality.
ITEM_NOUNS = {TEXT: "texts", IMAGE: "images", AUDIO: "audio clips"}


@dataclass
class Window:
    name: str
    items: list[str | Media]  # what is embedded: texts, or image / audio references (one modality)
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


def task_texts(data: TaskData) -> tuple[list[str | Media], str | None]:
    """(items, role) a model embeds for a task dataset, as its family says: texts, or image /
    audio references (``Media``) for a media family.

    Retrieval: its queries, in the "query" role (as evaluate encodes them); others: role None.
    """
    items, role = family_of(data).monitor_texts(data.examples)
    return list(items), role


def role_modality(role: str) -> str:
    """The modality of a column role: ``image`` and ``audio`` hold media paths, any other texts."""
    return MEDIA_ROLES.get(role, TEXT)


def window_roles(family: TaskFamily) -> tuple[str, ...]:
    """The columns of a window file whose values are embedded, from what ``family`` declares.

    - A family that embeds its reference in a role (``monitor_role``, e.g. retrieval's queries):
      its first ``embedded_columns`` entry, the column of that role's items.
    - Otherwise its ``embedded_columns`` that a labelled window carries (``window_columns``; all
      of them when it declares none). When these include a media column (``image``, ``audio``),
      the media column only: a media task's text columns (labels, captions, class prompts)
      describe the items, they are not what is monitored.
    """
    embedded = tuple(family.embedded_columns)
    if family.monitor_role is not None:
        return embedded[:1]
    declared = family.window_columns if family.window_columns is not None else embedded
    roles = tuple(role for role in embedded if role in declared) or embedded
    media = tuple(role for role in roles if role_modality(role) != TEXT)
    return media[:1] if media else roles


def frame_texts(frame: pd.DataFrame, where: str, roles: Sequence[str] = ("text",)) -> list[str]:
    """The non-blank texts of a window's ``roles`` columns (in that order); DataError when it has none."""
    from embsel_mlflow.data.tables import VISIBLE  # the data layer's own "empty text" rule

    present = _present(frame, where, roles)
    texts = [
        str(v) for role in present for v in frame[role].tolist() if isinstance(v, str) and VISIBLE.search(v)
    ]
    if not texts:
        raise DataError(f"{where}: the window is empty (no non-blank text); give a window with texts")
    return texts


def frame_media(
    frame: pd.DataFrame, source: str, table: TableConfig, reference: DataConfig, role: str, where: str
) -> list[Media]:
    """The checked image / audio references of a window's ``role`` column, read as the data loader
    reads the reference's own (``data.tables.media``: paths relative to the reference's data.root
    and inside it, data.media limits, data.on_bad_media); DataError when none is usable."""
    from embsel_mlflow.data.tables import Loaded, Tables, media

    modality = role_modality(role)
    _present(frame, where, [role])
    tables = Tables(reference)  # the reference's root, limits and on_bad_media
    _, items = media(tables, frame, role, Loaded(frame, source, dict(table.columns)), modality)
    for warning in tables.warnings:  # data.on_bad_media=skip: the rows left out, counted
        log.warning("%s: %s", where, warning.message)
    if not items:
        raise DataError(
            f"{where}: the window is empty (no usable {modality} file); "
            f"give a window with {ITEM_NOUNS[modality]}"
        )
    return items


def items_digest(frame: pd.DataFrame, items: Sequence[str | Media]) -> str:
    """The window's digest: its table's, and the content hash of every media file it names
    (a file rewritten under the same path is a new window)."""
    digest = frame_digest(frame)
    media = [item.digest for item in items if isinstance(item, Media)]
    if not media:
        return digest
    return hashlib.sha256(digest.encode() + b"".join(media)).hexdigest()[:32]


def _present(frame: pd.DataFrame, where: str, roles: Sequence[str]) -> list[str]:
    present = [role for role in roles if role in frame.columns]
    if not present:
        first = roles[0]
        what = "text" if role_modality(first) == TEXT else f"{first} path"
        raise DataError(
            f"{where}: no {what} column (columns: {', '.join(map(str, frame.columns))}); name it "
            f"{first!r} or map one with current.table.columns.{first}=<column>"
        )
    return present


def window_items(
    frame: pd.DataFrame, source: str, table: TableConfig, reference: DataConfig, where: str
) -> list[str | Media]:
    """What a window file embeds, by the reference's family: texts, or checked media references."""
    roles = window_roles(get_family(reference.task, dataset=reference.name))
    present = [role for role in roles if role in frame.columns] or list(roles)
    if role_modality(present[0]) == TEXT:
        return list(frame_texts(frame, where, roles))
    return list(frame_media(frame, source, table, reference, present[0], where))


def file_windows(cfg: WindowFilesConfig, reference: DataConfig, judged_dir: Path) -> list[Window]:
    """Windows from ``current.paths`` (in the order given) and ``current.dir`` (by name or time).

    Judged-query windows of a retrieval reference write their queries and qrels under ``judged_dir``.
    """
    from embsel_mlflow.data.loader import resolve_path

    if cfg.order_by not in ORDERS:
        raise ConfigError(f"current.order_by must be one of {', '.join(ORDERS)}, got {cfg.order_by!r}")
    paths = [resolve_path(path, cfg.root, "current.paths") for path in cfg.paths]
    for path in paths:
        if not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "not found"
            raise DataError(f"current.paths: window file {path} {problem}; give existing window files")
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
    items = window_items(frame, source, table, reference, f"window {path}")
    digest = items_digest(frame, items)
    quality_data: DataConfig | None
    if is_judged_queries(frame, reference):
        items = list(dict.fromkeys(items))  # drift on its distinct queries, not once per judged doc
        quality_data = judged_queries_data(frame, reference, path.stem, judged_dir / digest, f"window {path}")
    else:
        quality_data = _quality_data(frame, table, reference, path.stem)
    timestamp = (
        _last_time(frame, cfg.timestamp_column, path) if cfg.timestamp_column else path.stat().st_mtime
    )
    return Window(
        name=path.stem,
        items=items,
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
        items, _ = task_texts(data)
        if not items:
            raise DataError(f"window {name}: the window is empty (no texts); give a window with texts")
        scored = next((t for t in data.tables if t.role == data.split), data.tables[-1])
        same_task = str(cfg.task) == str(reference.task)
        windows.append(
            Window(
                name=name,
                items=items,
                table=scored,
                timestamp=time.time(),
                quality_data=cfg if same_task else None,
                digest=items_digest(scored.frame, items),
            )
        )
    return windows
