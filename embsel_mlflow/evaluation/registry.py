"""Task type -> task class, and the factory the runners use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import TaskType
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.evaluation.base import EvalTask
from embsel_mlflow.evaluation.classification import ClassificationTask
from embsel_mlflow.evaluation.clustering import ClusteringTask
from embsel_mlflow.evaluation.pair_classification import PairClassificationTask
from embsel_mlflow.evaluation.retrieval import RetrievalTask
from embsel_mlflow.evaluation.sts import STSTask

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import EvaluationConfig
    from embsel_mlflow.data.task_data import TaskData

# A constant lookup table: one task class per task type.
TASKS: dict[TaskType, type[EvalTask]] = {
    TaskType.retrieval: RetrievalTask,
    TaskType.sts: STSTask,
    TaskType.pair_classification: PairClassificationTask,
    TaskType.classification: ClassificationTask,
    TaskType.clustering: ClusteringTask,
}


def build_task(data: TaskData, cfg: EvaluationConfig) -> EvalTask:
    """The evaluation task for ``data.task``, validated against ``data`` and ``cfg``."""
    try:
        task_type = TaskType(data.task)
    except ValueError:
        choices = ", ".join(t.value for t in TaskType)
        raise ConfigError(
            f"unknown task type '{data.task}' for dataset '{data.name}': use one of {choices}"
        ) from None
    return TASKS[task_type](data, cfg)
