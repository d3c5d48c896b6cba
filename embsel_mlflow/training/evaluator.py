"""The project's own task evaluators as a sentence-transformers evaluator (no second metric path).

During training, ``SentenceTransformerTrainer`` calls this on the validation split; it encodes
through the same ``Encoder`` and scores with the same ``EvalTask`` that ``evaluate`` uses, so
the validation main score is the number ``embsel evaluate`` would report for that checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

if TYPE_CHECKING:
    from embsel_mlflow.config import EvaluationConfig, ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.models.resolve import ResolvedModel


class TaskEvaluator(SentenceEvaluator):
    """Score a model being trained on ``data`` with the task's evaluator; the main score is primary."""

    def __init__(
        self, data: TaskData, evaluation: EvaluationConfig, model_cfg: ModelConfig, source: ResolvedModel
    ) -> None:
        from embsel_mlflow.families import build_task

        super().__init__()
        # no progress bars between training log lines
        self.task = build_task(data, dataclasses.replace(evaluation, show_progress=False))
        self.model_cfg = model_cfg
        self.source = source
        self.primary_metric = self.task.main_score_name
        self.greater_is_better = True
        self.last: TaskResult | None = None

    def score(self, model: Any) -> TaskResult:
        """The task result of ``model`` (a SentenceTransformer), encoded as ``evaluate`` encodes."""
        from embsel_mlflow.models.encoder import Encoder

        result = self.task.evaluate(Encoder(model, self.model_cfg, self.source))
        self.last = result
        return result

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        return dict(self.score(model).scores)
