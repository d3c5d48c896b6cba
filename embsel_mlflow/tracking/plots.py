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


# Beyond this many classes a confusion matrix has unreadable ticks: show the top confusions instead.
MAX_MATRIX_CLASSES = 20
TOP_CONFUSIONS = 20


def _sts(frame: pd.DataFrame, result: TaskResult, ax) -> None:
    ax.scatter(frame["gold_score"], frame["cosine_score"], s=6, alpha=0.4)
    ax.set_xlabel("gold score")
    ax.set_ylabel("cosine similarity")


def _pair_classification(frame: pd.DataFrame, result: TaskResult, ax) -> None:
    for label, part in frame.groupby("label"):
        ax.hist(part["cosine_score"], bins=40, alpha=0.6, label=f"label {label}")
    threshold = result.scores.get("cosine_accuracy_threshold")
    if threshold is not None:
        label = f"threshold {threshold:.3f} (best accuracy)"
        ax.axvline(threshold, color="black", linestyle="--", label=label)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)


def _retrieval(frame: pd.DataFrame, result: TaskResult, ax) -> None:
    column = next(c for c in frame.columns if c.startswith("ndcg_at_"))
    ax.hist(frame[column], bins=20, range=(0.0, 1.0))
    ax.set_xlabel(f"per-query {column}")
    ax.set_ylabel("queries")


def _confusion(frame: pd.DataFrame, ax, predicted: str, *, square: bool) -> None:
    """Gold label vs ``predicted``, by class name; ``square`` aligns both axes (same classes).

    With many classes (Banking77 has 77) a matrix is unreadable, so the most frequent
    confusions are drawn as labelled bars instead.
    """
    import pandas as pd

    table = pd.crosstab(frame["label"].astype(str), frame[predicted].astype(str))
    if square:
        labels = sorted(set(table.index) | set(table.columns))
        table = table.reindex(index=labels, columns=labels, fill_value=0)
    if square and len(table.index) > MAX_MATRIX_CLASSES:
        _top_confusions(table, ax, predicted)
        return
    ax.imshow(table.to_numpy(), aspect="auto", cmap="Blues")
    ax.set_xlabel(predicted)
    ax.set_ylabel("gold label")
    if len(table.index) <= MAX_MATRIX_CLASSES:
        ax.set_yticks(range(len(table.index)), labels=list(table.index), fontsize=7)
    if len(table.columns) <= MAX_MATRIX_CLASSES:
        ax.set_xticks(range(len(table.columns)), labels=list(table.columns), fontsize=7, rotation=90)


def _top_confusions(table: pd.DataFrame, ax, predicted: str) -> None:
    pairs = table.stack()
    pairs = pairs[[gold != guess for gold, guess in pairs.index]]
    top = pairs[pairs > 0].sort_values(ascending=False).head(TOP_CONFUSIONS)[::-1]
    ax.barh(range(len(top)), top.to_numpy())
    ax.set_yticks(range(len(top)), labels=[f"{gold} -> {guess}" for gold, guess in top.index], fontsize=7)
    ax.set_xlabel(f"test texts (the {len(top)} most frequent confusions)")
    ax.set_ylabel(f"gold label -> {predicted}")


# Each draws the (non-empty) per-item table of a result onto a matplotlib Axes.
PLOTTERS: dict[str, Callable[[pd.DataFrame, TaskResult, object], None]] = {
    "sts": _sts,
    "pair_classification": _pair_classification,
    "retrieval": _retrieval,
    "classification": lambda frame, result, ax: _confusion(frame, ax, "predicted", square=True),
    "clustering": lambda frame, result, ax: _confusion(frame, ax, "cluster", square=False),
}


def result_figure(result: TaskResult, model_name: str) -> Figure | None:
    """The task's diagnostic plot, titled with the model, dataset and main score; None if nothing to draw."""
    plot = PLOTTERS.get(result.task)
    if plot is None or result.per_item is None or not len(result.per_item):
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5.5), layout="constrained")
    ax = figure.add_subplot()
    plot(result.per_item, result, ax)
    ax.set_title(
        f"{model_name} on {result.dataset} [{result.split}]\n"
        f"{result.main_score_name} = {result.main_score:.4f}",
        fontsize=10,
    )
    return figure
