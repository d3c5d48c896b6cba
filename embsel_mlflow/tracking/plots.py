"""One diagnostic figure per task, drawn from the per-item table, logged as a PNG artifact.

Uses matplotlib's object API (no pyplot): no global backend or figure state is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from embsel_mlflow.evaluation.base import TaskResult


def _sts(frame: pd.DataFrame, ax) -> None:
    ax.scatter(frame["gold_score"], frame["cosine_score"], s=6, alpha=0.4)
    ax.set_xlabel("gold score")
    ax.set_ylabel("cosine similarity")


def _pair_classification(frame: pd.DataFrame, ax) -> None:
    for label, part in frame.groupby("label"):
        ax.hist(part["cosine_score"], bins=40, alpha=0.6, label=f"label {label}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.legend()


def _retrieval(frame: pd.DataFrame, ax) -> None:
    column = next(c for c in frame.columns if c.startswith("ndcg_at_"))
    ax.hist(frame[column], bins=20, range=(0.0, 1.0))
    ax.set_xlabel(f"per-query {column}")
    ax.set_ylabel("queries")


def _confusion(frame: pd.DataFrame, ax, predicted: str, *, square: bool) -> None:
    """Gold label vs ``predicted``; ``square`` aligns both axes (same classes, even if never predicted)."""
    import pandas as pd

    table = pd.crosstab(frame["label"], frame[predicted])
    if square:
        labels = sorted(set(table.index) | set(table.columns))
        table = table.reindex(index=labels, columns=labels, fill_value=0)
    ax.imshow(table.to_numpy(), aspect="auto", cmap="Blues")
    ax.set_xlabel(predicted)
    ax.set_ylabel("gold label")
    if len(table.index) <= 20:  # tick labels only while they stay readable
        ax.set_yticks(range(len(table.index)), labels=[str(v) for v in table.index], fontsize=7)
        ax.set_xticks(
            range(len(table.columns)), labels=[str(v) for v in table.columns], fontsize=7, rotation=90
        )


PLOTTERS: dict[str, Callable[[pd.DataFrame, object], None]] = {
    "sts": _sts,
    "pair_classification": _pair_classification,
    "retrieval": _retrieval,
    "classification": lambda frame, ax: _confusion(frame, ax, "predicted", square=True),
    "clustering": lambda frame, ax: _confusion(frame, ax, "cluster", square=False),
}


def result_figure(result: TaskResult) -> Figure | None:
    """The task's diagnostic plot, or None when there is nothing to draw."""
    plot = PLOTTERS.get(result.task)
    if plot is None or result.per_item is None or not len(result.per_item):
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), layout="constrained")
    ax = figure.add_subplot()
    plot(result.per_item, ax)
    ax.set_title(f"{result.dataset} [{result.split}]: {result.main_score_name} = {result.main_score:.4f}")
    return figure
