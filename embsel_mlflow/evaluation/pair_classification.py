"""Pair classification: how well embedding similarity separates positive from negative pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from embsel_mlflow.config.schema import TaskType
from embsel_mlflow.data.task_data import PairClassificationExamples
from embsel_mlflow.errors import DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.similarity import paired_scores

if TYPE_CHECKING:
    from embsel_mlflow.evaluation.base import TextEncoder

# (score name, higher score = more similar), in MTEB's order. Distances stay positive and are
# searched in ascending order, as MTEB does.
SCORE_FUNCTIONS = (("cosine", True), ("manhattan", False), ("euclidean", False), ("dot", True))
MAX_OVER = ("accuracy", "f1", "precision", "recall", "ap")


class PairClassificationTask(EvalTask):
    """MTEB's AbsTaskPairClassification: AP and best-threshold accuracy/F1 per similarity.

    Reports ``<similarity>_<metric>`` and MTEB's ``max_<metric>`` over the similarities
    (MTEB's own main score is ``max_ap``; ours is ``cosine_ap``).
    """

    task_type: ClassVar[TaskType] = TaskType.pair_classification
    main_score_name: ClassVar[str] = "cosine_ap"
    examples_type: ClassVar[type] = PairClassificationExamples
    extra_metric_inputs: ClassVar[str | None] = (
        "predictions=cosine similarity per pair, references=label (0/1)"
    )

    def _validate(self) -> None:
        ex: PairClassificationExamples = self.examples
        if not len(ex.s1) == len(ex.s2) == len(ex.labels):
            raise DataError(
                f"{self._where()}: s1, s2 and label have different lengths "
                f"({len(ex.s1)}, {len(ex.s2)}, {len(ex.labels)})"
            )
        labels = np.asarray(ex.labels)
        if labels.size == 0 or not np.isin(labels, (0, 1)).all():
            raise DataError(f"{self._where()}: labels must be 0 or 1 (1 = positive pair)")
        if len(np.unique(labels)) < 2:
            raise DataError(f"{self._where()}: labels need both positive (1) and negative (0) pairs")

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        import pandas as pd

        from embsel_mlflow.metrics import load_metric

        ex: PairClassificationExamples = self.examples
        embeddings1 = self._encode(encoder, ex.s1)
        embeddings2 = self._encode(encoder, ex.s2)
        labels = np.asarray(ex.labels, dtype=np.int64).tolist()
        similarity = paired_scores(embeddings1, embeddings2)

        metric = load_metric("pair_classification")
        scores: dict[str, float] = {}
        for name, higher_is_similar in SCORE_FUNCTIONS:
            result = metric.compute(
                predictions=similarity[name].tolist(),
                references=labels,
                high_score_more_similar=higher_is_similar,
            )
            scores.update({f"{name}_{key}": value for key, value in result.items()})
        for key in MAX_OVER:
            scores[f"max_{key}"] = max(scores[f"{name}_{key}"] for name, _ in SCORE_FUNCTIONS)

        cosine = similarity["cosine"].tolist()
        threshold = scores["cosine_accuracy_threshold"]
        per_item = pd.DataFrame(
            {
                "sentence1": ex.s1,
                "sentence2": ex.s2,
                "label": labels,
                "cosine_score": cosine,
                # the prediction at the accuracy-optimal cosine threshold
                "predicted": [int(score > threshold) for score in cosine],
            }
        )
        return TaskOutput(scores=scores, per_item=per_item, metric_inputs=[(cosine, labels)])
