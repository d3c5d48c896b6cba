"""The modality guard: route each candidate to data it can embed, and each column to the right model.

Two checks, both before any model is loaded or any input encoded:

- the candidate's kind must take every modality the task embeds (``CandidateKind.modalities``
  covers ``TaskFamily.modalities``): a text model on an image task is refused with one line that
  names the registered kinds that fit;
- a column the task embeds *as text* must not hold image or audio paths (a text task pointed at
  a column of file names), unless ``profile.allow_modality_mismatch=true``; the line names the
  tasks and kinds that do embed that modality.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import DataError
from embsel_mlflow.profiling.columns import MEDIA_MODALITY, detect_column

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.candidates import BuildContext
    from embsel_mlflow.config import ModelConfig, ProfileConfig
    from embsel_mlflow.data.task_data import TableInfo, TaskData

_GUARD_SAMPLE = 5000  # values inspected per column: the guard runs before every evaluation
# Columns the built-in evaluation tasks embed as text (after the data config's role mapping); a
# task family adds its own (``TaskFamily.embedded_columns``).
EMBEDDED_ROLES = ("text", "s1", "s2", "title")
MEDIA_ROLES = frozenset(MEDIA_MODALITY.values())  # "image", "audio": columns embedded as media


class ModalityMismatch(DataError):
    """A candidate or a column that does not fit the modality of the data."""


def refuse_modality_mismatch(
    data: TaskData,
    cfg: ProfileConfig,
    *,
    root: str | Path = ".",
    model: ModelConfig | None = None,
    context: BuildContext | None = None,
) -> None:
    """Raise ModalityMismatch when ``model``'s kind cannot embed the task's modalities, or when a
    column the task embeds as text holds image/audio paths.

    ``profile.allow_modality_mismatch=true`` lets the second through (e.g. a text model on file
    names on purpose), never the first: a kind cannot encode what it does not take. ``context``:
    where a ``from_run`` model's run is (its logged kind says what it embeds).
    """
    if model is not None:
        refuse_candidate(model, data.task, context)
    refuse_media_tables(data.tables, data.name, cfg, root=root, task=data.task)


def refuse_candidate(model: ModelConfig, task: Any, context: BuildContext | None = None) -> None:
    """One line when the candidate ``model`` does not take every modality task ``task`` embeds.

    The kind answers for the candidate (``CandidateKind.modalities_of``): a ``from_run`` model by
    its logged kind, read from the run (``context.tracking_uri``) before anything is loaded.
    """
    from embsel_mlflow.candidates import BuildContext, get_kind
    from embsel_mlflow.families import get_family

    kind = get_kind(model.kind, model=model.name)
    family = get_family(task)
    takes = kind.modalities_of(model, context or BuildContext())
    if family.modalities <= takes:
        return
    needed = _and(family.modalities)
    raise ModalityMismatch(
        f"model '{model.name}' (kind {kind.name}) embeds {_and(takes)} only; task {family.name} "
        f"embeds {needed}: {_kinds_that_fit(family.modalities, needed)}"
    )


def fitting_kinds(modalities: Iterable[str]) -> list[str]:
    """The registered candidate kinds that take every one of ``modalities``, in registration order."""
    from embsel_mlflow.candidates import KINDS

    wanted = frozenset(modalities)
    return [name for name, kind in KINDS.items() if wanted <= kind.modalities]


def fitting_tasks(modality: str) -> list[str]:
    """The registered task families that embed ``modality``."""
    from embsel_mlflow.families import FAMILIES

    return [name for name, family in FAMILIES.items() if modality in family.modalities]


def embedded_roles() -> tuple[str, ...]:
    """The columns any registered task family embeds: the built-ins' first, in their usual order."""
    from embsel_mlflow.families import FAMILIES

    extra = [column for family in FAMILIES.values() for column in family.embedded_columns]
    return tuple(dict.fromkeys([*EMBEDDED_ROLES, *extra]))


def text_roles(task: Any = None) -> tuple[str, ...]:
    """The columns ``task`` embeds as text (its embedded columns but ``image``/``audio``); every
    family's when ``task`` is None (a monitored window of unknown task)."""
    if task is None:
        roles = embedded_roles()
    else:
        from embsel_mlflow.families import get_family

        roles = get_family(task).embedded_columns
    return tuple(role for role in roles if role not in MEDIA_ROLES)


def refuse_media_tables(
    tables: Iterable[TableInfo], name: str, cfg: ProfileConfig, *, root: str | Path = ".", task: Any = None
) -> None:
    """The column check on loaded tables (e.g. a monitored window that is not a task dataset)."""
    if cfg.allow_modality_mismatch:
        return
    roles = text_roles(task)
    for table in tables:
        for role in roles:
            if role not in table.frame.columns:
                continue
            kind = detect_column(role, _sample(table.frame[role]), root=root)
            if kind.kind in MEDIA_MODALITY:
                what = MEDIA_MODALITY[kind.kind]
                raise ModalityMismatch(
                    f"{table.source}: the {role!r} column of {name}/{table.role} holds {what} paths "
                    f"({kind.evidence}): a text embedding model does not fit this data; {_route(what)}, "
                    "map a text column instead, or set profile.allow_modality_mismatch=true"
                )


def _route(what: str) -> str:
    """Where data of modality ``what`` goes: its tasks and the kinds that embed it."""
    tasks, kinds = fitting_tasks(what), fitting_kinds({what})
    if not tasks or not kinds:
        return f"no registered task and kind embed {what} together yet"
    return (
        f"for {what} data use data.task={' or '.join(tasks)} with a kind that embeds it ({', '.join(kinds)})"
    )


def _kinds_that_fit(modalities: Iterable[str], what: str) -> str:
    kinds = fitting_kinds(modalities)
    if kinds:
        return f"use a kind that does: {', '.join(kinds)}"
    return f"no registered kind embeds {what}; register one (embsel_mlflow.candidates.register_kind)"


def _and(modalities: Iterable[str]) -> str:
    # text first, then the media in a fixed order: "text and image", never "image and text"
    order = {"text": 0, "image": 1, "audio": 2}
    return " and ".join(sorted(modalities, key=lambda modality: (order.get(modality, 9), modality)))


def _sample(column: pd.Series) -> pd.Series:
    step = max(1, len(column) // _GUARD_SAMPLE)
    return column.iloc[::step]
