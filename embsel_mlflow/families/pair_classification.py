"""Pair classification: how well embedding similarity separates positive from negative pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import binary_labels, head, texts
from embsel_mlflow.errors import DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.similarity import paired_scores
from embsel_mlflow.families.base import PairKind
from embsel_mlflow.families.sts import SentencePairFamily

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.evaluation.base import TextEncoder


@dataclass
class PairClassificationExamples:
    s1: list[str]
    s2: list[str]
    labels: np.ndarray  # int64, 1 = positive pair


# (score name, higher score = more similar), in MTEB's order. Distances stay positive and are
# searched in ascending order, as MTEB does.
SCORE_FUNCTIONS = (("cosine", True), ("manhattan", False), ("euclidean", False), ("dot", True))
MAX_OVER = ("accuracy", "f1", "precision", "recall", "ap")


class PairClassificationTask(EvalTask):
    """MTEB's AbsTaskPairClassification: AP and best-threshold accuracy/F1 per similarity.

    Reports ``<similarity>_<metric>`` and MTEB's ``max_<metric>`` over the similarities
    (MTEB's own main score is ``max_ap``; ours is ``cosine_ap``).
    """

    task_type: ClassVar[str] = TaskType.pair_classification
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


class PairClassificationFamily(SentencePairFamily):
    name: ClassVar[str] = TaskType.pair_classification
    examples_type: ClassVar[type] = PairClassificationExamples
    task_class: ClassVar[type[EvalTask]] = PairClassificationTask
    window_columns: ClassVar[tuple[str, ...] | None] = ("s1", "s2", "label")
    pair_kind: ClassVar[PairKind | None] = PairKind.labelled
    gold: ClassVar[str] = "labels"

    def build(self, tables: Tables, split: str, limit: int | None) -> PairClassificationExamples:
        loaded = tables.split(split, ["s1", "s2", "label"])
        frame = head(tables, loaded, limit)
        return PairClassificationExamples(
            s1=texts(frame, "s1", loaded),
            s2=texts(frame, "s2", loaded),
            labels=binary_labels(frame, "label", loaded),
        )

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """Average precision of the cosine scores on each resample."""
        from sklearn.metrics import average_precision_score

        labels = per_item["label"].to_numpy()
        scores = per_item["cosine_score"].to_numpy(dtype=np.float64)
        return np.array([average_precision_score(labels[row], scores[row]) for row in indices])

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """(sentence1, sentence2, label 0/1)."""
        labels = [int(label) for label in np.asarray(examples.labels)]
        return {"sentence1": list(examples.s1), "sentence2": list(examples.s2), "label": labels}
