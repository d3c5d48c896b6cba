"""Load a dataset config as its family's :class:`TaskData`, and build its evaluation task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.data.tables import Tables
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.families.registry import get_family

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, EvaluationConfig
    from embsel_mlflow.evaluation.base import EvalTask


def load_task_data(cfg: DataConfig, *, split: str | None = None) -> TaskData:
    """Load the dataset described by ``cfg`` for its task, evaluating on ``split`` (default: eval_split).

    ``TaskData.tables`` records every table as loaded (roles renamed); under ``cfg.limit`` the
    evaluation table holds only the rows kept (for retrieval: the qrels of the first N queries).
    """
    split = split or cfg.eval_split
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"data.limit: must be a positive number of examples or null, got {cfg.limit}")
    family = get_family(cfg.task, dataset=cfg.name)
    tables = Tables(cfg)
    examples = family.build(tables, split, cfg.limit)
    return TaskData(
        name=cfg.name,
        task=family.name,
        split=split,
        examples=examples,
        tables=tables.loaded,
        warnings=tables.warnings,
        evaluation=dict(cfg.evaluation),
        family=family,
    )


def build_task(data: TaskData, cfg: EvaluationConfig) -> EvalTask:
    """The evaluation task for ``data.task``, validated against ``data`` and ``cfg`` with the
    dataset's own settings (``data.evaluation``) over it: every step scores through here."""
    from embsel_mlflow.config.evaluation import dataset_evaluation

    family = get_family(data.task, dataset=data.name)
    return family.task(data, dataset_evaluation(cfg, data.evaluation, data.name))
