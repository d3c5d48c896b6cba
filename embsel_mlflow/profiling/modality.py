"""The modality guard: a text model must not embed a column of image or audio paths."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.errors import DataError
from embsel_mlflow.profiling.columns import ColumnKind, detect_column

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import ProfileConfig
    from embsel_mlflow.data.task_data import TableInfo, TaskData

_GUARD_SAMPLE = 5000  # values inspected per column: the guard runs before every evaluation
# Columns the built-in evaluation tasks embed (after the data config's role mapping); a task
# family adds its own (``TaskFamily.embedded_columns``).
EMBEDDED_ROLES = ("text", "s1", "s2", "title")
_MEDIA = {ColumnKind.image_path: "image", ColumnKind.audio_path: "audio"}


class ModalityMismatch(DataError):
    """A text embedding model pointed at image or audio paths."""


def refuse_modality_mismatch(data: TaskData, cfg: ProfileConfig, *, root: str | Path = ".") -> None:
    """Raise ModalityMismatch when a column the model would embed holds image/audio paths.

    ``profile.allow_modality_mismatch=true`` lets it through (e.g. a text model on file names on purpose).
    """
    refuse_media_tables(data.tables, data.name, cfg, root=root)


def embedded_roles() -> tuple[str, ...]:
    """The columns any registered task family embeds: the built-ins' first, in their usual order."""
    from embsel_mlflow.families import FAMILIES

    extra = [column for family in FAMILIES.values() for column in family.embedded_columns]
    return tuple(dict.fromkeys([*EMBEDDED_ROLES, *extra]))


def refuse_media_tables(
    tables: Iterable[TableInfo], name: str, cfg: ProfileConfig, *, root: str | Path = "."
) -> None:
    """The guard on loaded tables (e.g. a monitored window that is not a task dataset)."""
    if cfg.allow_modality_mismatch:
        return
    roles = embedded_roles()
    for table in tables:
        for role in roles:
            if role not in table.frame.columns:
                continue
            kind = detect_column(role, _sample(table.frame[role]), root=root)
            if kind.kind in _MEDIA:
                raise ModalityMismatch(
                    f"{table.source}: the {role!r} column of {name}/{table.role} holds "
                    f"{_MEDIA[kind.kind]} paths ({kind.evidence}): a text embedding model does not fit "
                    "this data; map a text column instead, or set profile.allow_modality_mismatch=true"
                )


def _sample(column: pd.Series) -> pd.Series:
    step = max(1, len(column) // _GUARD_SAMPLE)
    return column.iloc[::step]
