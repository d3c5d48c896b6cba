"""Semantic textual similarity: correlation of embedding similarities with gold scores."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from embsel_mlflow.config.schema import TaskType
from embsel_mlflow.data.task_data import STSExamples
from embsel_mlflow.errors import DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.similarity import paired_scores

if TYPE_CHECKING:
    from embsel_mlflow.evaluation.base import TextEncoder


class STSTask(EvalTask):
    """MTEB's AbsTaskSTS: Pearson/Spearman of cosine, Manhattan, Euclidean and dot scores.

    ``pearson``/``spearman`` are MTEB's "model similarity" scores; our encoders score with
    cosine, so they equal the cosine ones (as MTEB reports for sentence-transformers).
    """

    task_type: ClassVar[TaskType] = TaskType.sts
    main_score_name: ClassVar[str] = "cosine_spearman"
    examples_type: ClassVar[type] = STSExamples
    extra_metric_inputs: ClassVar[str | None] = (
        "predictions=cosine similarity per pair, references=gold score"
    )

    def _validate(self) -> None:
        ex: STSExamples = self.examples
        if not len(ex.s1) == len(ex.s2) == len(ex.scores):
            raise DataError(
                f"{self._where()}: s1, s2 and score have different lengths "
                f"({len(ex.s1)}, {len(ex.s2)}, {len(ex.scores)})"
            )
        if len(ex.s1) < 2:
            raise DataError(f"{self._where()}: correlations need at least 2 pairs, got {len(ex.s1)}")
        gold = np.asarray(ex.scores, dtype=np.float64)
        if not np.isfinite(gold).all() or gold.min() == gold.max():
            raise DataError(f"{self._where()}: gold scores must be finite and not all equal")
        if all(a == b for a, b in zip(ex.s1, ex.s2, strict=True)):
            raise DataError(
                f"{self._where()}: every pair holds the same text twice, so every model gives every pair "
                "the same similarity and no correlation can be computed; check the s1 and s2 columns"
            )

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        import pandas as pd

        from embsel_mlflow.metrics import load_metric

        ex: STSExamples = self.examples
        embeddings1 = self._encode(encoder, ex.s1)
        embeddings2 = self._encode(encoder, ex.s2)
        gold = np.asarray(ex.scores, dtype=np.float64)
        # MTEB maps gold scores to [0, 1] (with the task's declared range); correlations are unchanged.
        normalized = (gold - gold.min()) / (gold.max() - gold.min())
        similarity = paired_scores(embeddings1, embeddings2)
        similarity["manhattan"] = -similarity["manhattan"]
        similarity["euclidean"] = -similarity["euclidean"]
        cosine_values = similarity["cosine"]
        if np.ptp(cosine_values) == 0:
            raise DataError(
                f"{self._where()}: the model gives all {len(cosine_values)} pairs the same cosine similarity "
                f"({cosine_values[0]:.6g}), so no correlation can be computed; the model's embeddings "
                "do not vary (check the model, its max_seq_length and the texts)"
            )

        metric = load_metric("sts")
        scores: dict[str, float] = {}
        for name in ("cosine", "manhattan", "euclidean", "dot"):
            result = metric.compute(predictions=similarity[name].tolist(), references=normalized.tolist())
            scores[f"{name}_pearson"] = result["pearson"]
            scores[f"{name}_spearman"] = result["spearman"]
        scores["pearson"] = scores["cosine_pearson"]
        scores["spearman"] = scores["cosine_spearman"]

        cosine = similarity["cosine"].tolist()
        per_item = pd.DataFrame(
            {"sentence1": ex.s1, "sentence2": ex.s2, "gold_score": gold, "cosine_score": cosine}
        )
        return TaskOutput(scores=scores, per_item=per_item, metric_inputs=[(cosine, gold.tolist())])
