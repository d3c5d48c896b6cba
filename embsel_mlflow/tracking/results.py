"""Log an evaluation result: metrics under ``<split>/<name>``, efficiency, per-item table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from embsel_mlflow.tracking.descriptions import NOTE_TAG, result_description
from embsel_mlflow.tracking.plots import log_result_figure
from embsel_mlflow.tracking.run_logger import DatasetRef, RunLogger

if TYPE_CHECKING:
    from pathlib import Path

    from embsel_mlflow.evaluation.base import TaskResult


def result_metrics(result: TaskResult) -> dict[str, float]:
    """Quality metrics as MLflow keys: ``test/ndcg_at_10`` ... and ``main_score``."""
    metrics = {f"{result.split}/{name}": float(value) for name, value in result.scores.items()}
    metrics["main_score"] = float(result.main_score)
    return metrics


def efficiency_metrics(result: TaskResult, *, embedding_dim: int, num_parameters: int) -> dict[str, float]:
    seconds = result.encode_seconds
    return {
        "encode_seconds": seconds,
        "texts_encoded": float(result.num_texts_encoded),
        "texts_per_second": result.num_texts_encoded / seconds if seconds > 0 else math.nan,
        "embedding_dim": float(embedding_dim),
        "num_parameters": float(num_parameters),
    }


def log_result(
    run: RunLogger,
    result: TaskResult,
    *,
    efficiency: dict[str, float],
    log_per_item: bool,
    model_name: str,
    model_id: str | None = None,
    dataset: DatasetRef | None = None,
    plots_dir: Path | None = None,
) -> None:
    """Metrics (linked to the logged model and the dataset), the main score's name, results.json,
    and the per-item table and plot under ``<dataset>/<split>`` so tasks never share a file.

    ``plots_dir``: where rendered plots are kept by content (the embedding cache's), or None."""
    metrics = {**result_metrics(result), **efficiency}
    run.log_metrics(metrics, model_id=model_id, dataset=dataset)
    run.set_tags(
        {
            "main_score_name": result.main_score_name,
            # The description on the run page: the answer first.
            NOTE_TAG: result_description(result, model_name),
        }
    )
    summary: dict[str, Any] = {
        "task": result.task,
        "dataset": result.dataset,
        "split": result.split,
        "model": model_name,
        "main_score_name": result.main_score_name,
        "main_score": result.main_score,
        "scores": result.scores,
        "efficiency": efficiency,
    }
    run.log_dict(_finite_or_none(summary), "results.json")  # strict JSON: never a bare NaN
    if result.warnings:  # questionable data, with counts (see DataWarning)
        run.set_tags({"embsel.data_warnings": "; ".join(f"{w.code}={w.count}" for w in result.warnings)})
        run.log_dict({"warnings": [w.to_dict() for w in result.warnings]}, "warnings.json")
    if log_per_item and result.per_item is not None and len(result.per_item):
        run.log_table(result.per_item, f"per_item/{result.dataset}/{result.split}.json")
        artifact = f"plots/{result.dataset}/{result.split}_{result.task}.png"
        log_result_figure(run, result, model_name, artifact, plots_dir)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value
