"""The ``evaluation`` node of every scoring step: the task protocol (``evaluation/``, ``families/``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from omegaconf import MISSING

from embsel_mlflow.errors import ConfigError


@dataclass
class MetricSpec:
    """An extra HF evaluate module run on the task's predictions and references."""

    path: str = MISSING  # a module name (needs the Hub) or a local path to a module script/dir
    name: str | None = None  # metric key prefix; defaults to the module's name
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationConfig:
    seed: int = 42
    # retrieval
    k_values: list[int] = field(default_factory=lambda: [1, 3, 5, 10, 100])
    corpus_chunk_size: int = 50_000
    ignore_identical_ids: bool = False
    # classification (MTEB protocol)
    n_experiments: int = 10
    samples_per_label: int = 8
    max_iter: int = 100
    # clustering
    clustering_batch_size: int = 500
    # extra evaluate modules
    extra_metrics: list[MetricSpec] = field(default_factory=list)
    show_progress: bool = True  # progress bars, shown only when stderr is a terminal


def dataset_evaluation(
    evaluation: EvaluationConfig, settings: Mapping[str, Any], dataset: str
) -> EvaluationConfig:
    """``evaluation`` with a dataset's own settings (``data.evaluation``) over it: the one merge,
    applied by ``families.build_task`` for every step that scores (evaluate, select, train, monitor)."""
    if not settings:
        return evaluation
    from omegaconf import OmegaConf

    try:
        merged = OmegaConf.merge(OmegaConf.structured(evaluation), dict(settings))
        return cast("EvaluationConfig", OmegaConf.to_object(merged))
    except Exception as exc:  # an unknown key or a wrong type
        reason = str(exc).splitlines()[0]
        raise ConfigError(
            f"data.evaluation of dataset {dataset!r}: {reason}; it takes the keys of the evaluation "
            "node (e.g. samples_per_label, k_values)"
        ) from exc
