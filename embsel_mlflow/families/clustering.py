"""Clustering: mini-batch k-means on embeddings, scored against gold labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head, texts
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.labels import case_clashes, label_ids
from embsel_mlflow.families.base import TaskFamily, item_column, item_names

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.evaluation.base import TextEncoder


@dataclass
class ClusteringExamples:
    texts: list[str]
    labels: list[str]


class ClusteringTask(EvalTask):
    """MTEB's legacy (v1) clustering evaluator on one set of texts.

    ``MiniBatchKMeans(n_clusters=<number of labels>, batch_size, n_init="auto",
    random_state=seed)``; main score V-measure.
    """

    task_type: ClassVar[str] = TaskType.clustering
    main_score_name: ClassVar[str] = "v_measure"
    examples_type: ClassVar[type] = ClusteringExamples
    extra_metric_inputs: ClassVar[str | None] = "predictions=cluster id per text, references=gold label id"

    def _validate(self) -> None:
        ex: ClusteringExamples = self.examples
        if len(ex.texts) != len(ex.labels):
            raise DataError(f"{self._where()}: texts and labels have different lengths")
        n_labels = len(set(ex.labels))
        case_clashes(self, ex.labels, "gold")
        if n_labels < 2:
            raise DataError(f"{self._where()}: clustering needs at least 2 distinct labels, got {n_labels}")
        if len(ex.texts) < n_labels:
            raise DataError(f"{self._where()}: fewer texts ({len(ex.texts)}) than labels ({n_labels})")
        if self.cfg.clustering_batch_size < 1:
            raise ConfigError(
                f"evaluation.clustering_batch_size must be >= 1, got {self.cfg.clustering_batch_size}"
            )

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        import pandas as pd
        from sklearn.cluster import MiniBatchKMeans

        from embsel_mlflow.metrics import load_metric

        ex: ClusteringExamples = self.examples
        ids = label_ids(ex.labels)
        gold = [ids[str(label)] for label in ex.labels]
        embeddings = self._encode(encoder, ex.texts)
        model = MiniBatchKMeans(
            n_clusters=len(ids),
            batch_size=self.cfg.clustering_batch_size,
            n_init="auto",
            compute_labels=True,
            random_state=self.cfg.seed,
        )
        model.fit(embeddings)
        clusters = np.asarray(model.labels_, dtype=np.int64).tolist()
        scores = load_metric("clustering").compute(predictions=clusters, references=gold)
        per_item = pd.DataFrame(
            {
                item_column(ex.texts): item_names(ex.texts),
                "label": [str(label) for label in ex.labels],
                "cluster": clusters,
            }
        )
        return TaskOutput(scores=scores, per_item=per_item, metric_inputs=[(clusters, gold)])


class ClusteringFamily(TaskFamily):
    """No training pairs and no hold-out: clustering data is only evaluated."""

    name: ClassVar[str] = TaskType.clustering
    evaluation_settings: ClassVar[frozenset[str]] = frozenset({"clustering_batch_size"})
    examples_type: ClassVar[type] = ClusteringExamples
    task_class: ClassVar[type[EvalTask]] = ClusteringTask
    window_columns: ClassVar[tuple[str, ...] | None] = ("text", "label")

    def build(self, tables: Tables, split: str, limit: int | None) -> ClusteringExamples:
        loaded = tables.split(split, ["text", "label"])
        frame = head(tables, loaded, limit)
        return ClusteringExamples(
            texts=texts(frame, "text", loaded), labels=texts(frame, "label", loaded, what="label")
        )

    def item_count(self, examples: Any) -> int:
        return len(examples.texts)

    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        return {None: list(examples.texts)}

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """V-measure of the clusters on each resample."""
        from sklearn.metrics import v_measure_score

        labels = per_item["label"].to_numpy()
        clusters = per_item["cluster"].to_numpy()
        return np.array([v_measure_score(labels[row], clusters[row]) for row in indices])
