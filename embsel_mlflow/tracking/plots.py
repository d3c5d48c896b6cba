"""One diagnostic figure per task, drawn from the per-item table, logged as a PNG artifact.

Image and audio tasks draw the figure of their text counterpart (their per-item tables have the
same columns, the input column being ``image`` or ``audio``); a classification or clustering of
media items also lists the items it got wrong by their paths, the files to look at or listen to.

Uses matplotlib's object API (no pyplot): no global backend or figure state is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.tracking.run_logger import RunLogger


# Beyond this many classes a confusion matrix has unreadable ticks: show the top confusions instead.
MAX_MATRIX_CLASSES = 20
TOP_CONFUSIONS = 20
MAX_LISTED_ITEMS = 12  # media items listed by path under a confusion matrix
MEDIA_COLUMNS = ("image", "audio")  # per-item input columns that hold paths (families.base.item_column)
ITEM_WORDS = {"text": "texts", "image": "images", "audio": "audio clips"}


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


def _items_word(frame: pd.DataFrame) -> str:
    """What the table's rows are, in words: "texts", "images", "audio clips"."""
    return next((words for column, words in ITEM_WORDS.items() if column in frame.columns), "items")


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
        _top_confusions(table, ax, predicted, _items_word(frame))
        return
    ax.imshow(table.to_numpy(), aspect="auto", cmap="Blues")
    ax.set_xlabel(predicted)
    ax.set_ylabel("gold label")
    if len(table.index) <= MAX_MATRIX_CLASSES:
        ax.set_yticks(range(len(table.index)), labels=list(table.index), fontsize=7)
    if len(table.columns) <= MAX_MATRIX_CLASSES:
        ax.set_xticks(range(len(table.columns)), labels=list(table.columns), fontsize=7, rotation=90)


def _top_confusions(table: pd.DataFrame, ax, predicted: str, items: str) -> None:
    pairs = table.stack()
    pairs = pairs[[gold != guess for gold, guess in pairs.index]]
    top = pairs[pairs > 0].sort_values(ascending=False).head(TOP_CONFUSIONS)[::-1]
    ax.barh(range(len(top)), top.to_numpy())
    ax.set_yticks(range(len(top)), labels=[f"{gold} -> {guess}" for gold, guess in top.index], fontsize=7)
    ax.set_xlabel(f"test {items} (the {len(top)} most frequent confusions)")
    ax.set_ylabel(f"gold label -> {predicted}")


def wrong_media_items(frame: pd.DataFrame) -> tuple[str, list[str]]:
    """(heading, lines): the image or audio items a classification or clustering got wrong, by path.

    Classified: the label predicted is not the gold one. Clustered: the item's cluster is not the
    one matched to its label, clusters and labels paired one to one as ``cluster_accuracy`` pairs
    them (the most items in agreement), so the list holds the items that metric counts wrong.
    Nothing for texts: they are read in the per-item table.
    """
    column = next((c for c in MEDIA_COLUMNS if c in frame.columns), None)
    if column is None or "label" not in frame.columns:
        return "", []
    gold = frame["label"].astype(str)
    if "predicted" in frame.columns:
        other = frame["predicted"].astype(str)
        wrong = gold != other
        lines = [f"{path}: {label} -> {guess}" for path, label, guess in zip(
            frame[column][wrong], gold[wrong], other[wrong], strict=True)]  # fmt: skip
        heading = f"misclassified {ITEM_WORDS[column]}"
    elif "cluster" in frame.columns:
        matched = frame["cluster"].map(_matched_labels(gold, frame["cluster"])).fillna("no label")
        wrong = gold != matched
        places = [f"cluster {cluster} (matched to {label})" for cluster, label in zip(
            frame["cluster"][wrong], matched[wrong], strict=True)]  # fmt: skip
        lines = [f"{path}: {label}, in {place}" for path, label, place in zip(
            frame[column][wrong], gold[wrong], places, strict=True)]  # fmt: skip
        heading = f"{ITEM_WORDS[column]} outside their label's cluster"
    else:
        return "", []
    return f"{heading}: {len(lines)} of {len(frame)}", lines


def _matched_labels(gold: pd.Series, clusters: pd.Series) -> dict[Any, str]:
    """cluster -> the label it is matched to (Hungarian matching on the counts, as the metric's)."""
    import pandas as pd
    from scipy.optimize import linear_sum_assignment

    table = pd.crosstab(gold, clusters)
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    return {table.columns[c]: str(table.index[r]) for r, c in zip(rows, cols, strict=True)}


def _classification(frame: pd.DataFrame, result: TaskResult, ax) -> None:
    _confusion(frame, ax, "predicted", square=True)


def _clustering(frame: pd.DataFrame, result: TaskResult, ax) -> None:
    _confusion(frame, ax, "cluster", square=False)


# Each draws the (non-empty) per-item table of a result onto a matplotlib Axes. The image and
# audio families' tables are their text counterparts' (an ``image`` or ``audio`` input column).
PLOTTERS: dict[str, Callable[[pd.DataFrame, TaskResult, object], None]] = {
    "sts": _sts,
    "pair_classification": _pair_classification,
    "retrieval": _retrieval,
    "classification": _classification,
    "clustering": _clustering,
    "image_classification": _classification,
    "zero_shot_image_classification": _classification,
    "audio_classification": _classification,
    "image_clustering": _clustering,
    "audio_clustering": _clustering,
    "image_to_text_retrieval": _retrieval,
    "text_to_image_retrieval": _retrieval,
    "audio_to_text_retrieval": _retrieval,
    "text_to_audio_retrieval": _retrieval,
}


def result_figure(result: TaskResult, model_name: str) -> Figure | None:
    """The task's diagnostic plot, titled with the model, dataset and main score; None if nothing to draw.

    Below a classification or clustering of images or audio: the items it got wrong, by path.
    """
    plot = PLOTTERS.get(result.task)
    if plot is None or result.per_item is None or not len(result.per_item):
        return None
    from matplotlib.figure import Figure

    heading, lines = wrong_media_items(result.per_item)
    figure = Figure(figsize=(7, 7.5 if lines else 5.5), layout="constrained")
    if lines:
        ax, listing = figure.subplots(2, 1, height_ratios=[3, 1])
        shown = lines[:MAX_LISTED_ITEMS]
        if len(lines) > len(shown):
            shown.append(f"... and {len(lines) - len(shown)} more (the per-item table lists them all)")
        listing.axis("off")
        listing.set_title(heading, fontsize=9, loc="left")
        listing.text(0.0, 1.0, "\n".join(shown), va="top", ha="left", family="monospace", fontsize=7)
    else:
        ax = figure.add_subplot()
    plot(result.per_item, result, ax)
    ax.set_title(
        f"{model_name} on {result.dataset} [{result.split}]\n"
        f"{result.main_score_name} = {result.main_score:.4f}",
        fontsize=10,
    )
    return figure


# Bump when a plotter changes what it draws: rendered plots kept under the old version are not reused.
PLOTS_VERSION = 1


def log_result_figure(
    run: RunLogger, result: TaskResult, model_name: str, artifact_file: str, plots_dir: Path | None
) -> None:
    """Log the task's plot as ``artifact_file``; with ``plots_dir``, a plot already rendered from the
    same per-item table, scores and names is logged from there (no matplotlib import: a warm run
    costs what copying a PNG costs), and a new one is kept there for the next run."""
    key = _figure_key(result, model_name) if plots_dir is not None else None
    kept = plots_dir / f"{key}.png" if plots_dir is not None and key is not None else None
    if kept is None or not kept.is_file():
        figure = result_figure(result, model_name)
        if figure is None:
            return
        if kept is None:
            run.log_figure(figure, artifact_file)
            return
        tmp = kept.with_name(f".tmp-{uuid.uuid4().hex}.png")
        with contextlib.suppress(OSError):  # a full or read-only cache must not fail the run
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                figure.savefig(tmp)
                os.replace(tmp, kept)  # atomic: another process sees the whole PNG or none
            finally:
                tmp.unlink(missing_ok=True)  # a half-written PNG (full disk) is not left behind
        if not kept.is_file():
            run.log_figure(figure, artifact_file)
            return
    directory, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp_dir:
        local = Path(tmp_dir) / name
        local.write_bytes(kept.read_bytes())
        run.log_artifact(str(local), directory or None)


def _figure_key(result: TaskResult, model_name: str) -> str | None:
    """What the plot is drawn from, hashed; None when nothing is drawn."""
    if PLOTTERS.get(result.task) is None or result.per_item is None or not len(result.per_item):
        return None
    from importlib.metadata import version

    scores = sorted((name, repr(value)) for name, value in result.scores.items())
    fields = [
        PLOTS_VERSION, version("matplotlib"), result.task, result.dataset, result.split, model_name,
        result.main_score_name, repr(result.main_score), scores,
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps(fields).encode())
    digest.update(result.per_item.to_csv(index=True).encode())
    return digest.hexdigest()
