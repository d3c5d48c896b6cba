"""The ``evaluation`` node of every scoring step: the task protocol (``evaluation/``, ``families/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


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
