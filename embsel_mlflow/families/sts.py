"""Semantic textual similarity: correlation of embedding similarities with gold scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head, numbers, texts
from embsel_mlflow.errors import DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.similarity import paired_scores
from embsel_mlflow.families.base import PairKind, Splitter, TaskFamily, interleaved

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TextEncoder


@dataclass
class STSExamples:
    s1: list[str]
    s2: list[str]
    scores: np.ndarray  # float64 gold similarity


class STSTask(EvalTask):
    """MTEB's AbsTaskSTS: Pearson/Spearman of cosine, Manhattan, Euclidean and dot scores.

    ``pearson``/``spearman`` are MTEB's "model similarity" scores; our encoders score with
    cosine, so they equal the cosine ones (as MTEB reports for sentence-transformers).
    """

    task_type: ClassVar[str] = TaskType.sts
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


def spearman_statistic(per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
    """Spearman correlation of gold and cosine scores on each resample (row of ``indices``)."""
    from scipy.stats import rankdata

    gold = per_item["gold_score"].to_numpy(dtype=np.float64)[indices]
    predicted = per_item["cosine_score"].to_numpy(dtype=np.float64)[indices]
    gold, predicted = rankdata(gold, axis=1), rankdata(predicted, axis=1)
    gold -= gold.mean(axis=1, keepdims=True)
    predicted -= predicted.mean(axis=1, keepdims=True)
    denominator = np.sqrt((gold**2).sum(axis=1) * (predicted**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (gold * predicted).sum(axis=1) / denominator


class SentencePairFamily(TaskFamily):
    """Shared by the two sentence-pair families (s1, s2 and a gold value per pair)."""

    embedded_columns: ClassVar[tuple[str, ...]] = ("s1", "s2")
    gold: ClassVar[str]  # the examples' field of gold values (scores / labels)

    def item_count(self, examples: Any) -> int:
        return len(examples.s1)

    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        return {None: [*examples.s1, *examples.s2]}

    def timing_texts(self, examples: Any) -> tuple[list[str], list[str], str | None]:
        texts = interleaved(examples.s1, examples.s2)
        return texts, texts, None

    def calibration_texts(self, examples: Any) -> list[str]:
        return interleaved(examples.s1, examples.s2)

    def fit_texts(self, data: TaskData) -> tuple[list[str], str]:
        ex = data.examples
        return list(dict.fromkeys([*ex.s1, *ex.s2])), f"{data.split} sentences (no scores or labels)"

    def hold_out(self, examples: Any, split: Splitter) -> tuple[Any, Any]:
        keep, held = split(len(examples.s1))

        def rows(indices: np.ndarray) -> Any:
            values = np.asarray(getattr(examples, self.gold))[indices]
            columns: dict[str, Any] = {
                "s1": [examples.s1[i] for i in indices],
                "s2": [examples.s2[i] for i in indices],
                self.gold: values,
            }
            return type(examples)(**columns)

        return rows(keep), rows(held)


class STSFamily(SentencePairFamily):
    name: ClassVar[str] = TaskType.sts
    examples_type: ClassVar[type] = STSExamples
    task_class: ClassVar[type[EvalTask]] = STSTask
    window_columns: ClassVar[tuple[str, ...] | None] = ("s1", "s2", "score")
    pair_kind: ClassVar[PairKind | None] = PairKind.scored
    gold: ClassVar[str] = "scores"

    def build(self, tables: Tables, split: str, limit: int | None) -> STSExamples:
        loaded = tables.split(split, ["s1", "s2", "score"])
        frame = head(tables, loaded, limit)
        return STSExamples(
            s1=texts(frame, "s1", loaded),
            s2=texts(frame, "s2", loaded),
            scores=numbers(frame, "score", loaded),
        )

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        return spearman_statistic(per_item, indices)

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """(sentence1, sentence2, score scaled to [0, 1])."""
        scores = np.asarray(examples.scores, dtype=np.float64)
        low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
        scaled = (scores - low) / (high - low) if high > low else np.zeros_like(scores)
        return {"sentence1": list(examples.s1), "sentence2": list(examples.s2), "score": scaled.tolist()}
