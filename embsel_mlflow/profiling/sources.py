"""The tables a profile reads: every table of a dataset config, or one raw table, via the data layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.data.loader import load_table
from embsel_mlflow.data.task_data import TableInfo
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import get_family

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, TableConfig


def dataset_tables(data: DataConfig) -> list[TableInfo]:
    """Every configured table of ``data`` (all splits, corpus, queries), roles renamed as the task sees them.

    Read with ``load_table`` and the dataset's reader defaults but without the task's value checks:
    empty texts and the like are what a profile reports, not a reason to stop.
    """
    tables = []
    qrels = get_family(data.task, dataset=data.name).qrels_splits  # retrieval: splits are qrels
    for name, table in data.splits.items():
        if table.hub and not table.split:
            table = dataclasses.replace(table, split=name)  # as the task loader: the split's own name
        role = f"qrels/{name}" if qrels else name
        tables.append(_read(table, data.root, data, f"data.splits.{name}", role))
    for side in ("corpus", "queries"):
        table = getattr(data, side)
        if table is not None:
            tables.append(_read(table, data.root, data, f"data.{side}", side))
    if not tables:
        raise ConfigError(f"data: dataset {data.name!r} configures no table; set data.splits.<name>.path")
    return tables


def raw_table(table: TableConfig, root: str | Path) -> list[TableInfo]:
    """One table of any shape (``embsel profile table.path=...``), renamed by ``table.columns``."""
    return [_read(table, root, None, "table", "table")]


def _read(table: TableConfig, root: str | Path, data: DataConfig | None, where: str, role: str) -> TableInfo:
    try:
        frame, source = load_table(table, root=root, defaults=data.reader if data else None, where=where)
    except DataError as exc:
        # `datasets` words a header-only file as 'Instruction "train" corresponds to no data'
        if "corresponds to no data" in str(exc):
            raise DataError(
                f"{where}: {table.path} has no rows (an empty dataset); nothing to profile"
            ) from exc
        raise
    if frame.empty:
        raise DataError(f"{source}: {where} has no rows (an empty dataset); nothing to profile")
    return TableInfo(role=role, source=source, frame=frame)
