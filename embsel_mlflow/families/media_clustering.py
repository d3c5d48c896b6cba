"""Image and audio clustering: MTEB's (legacy) mini-batch k-means protocol on image or audio embeddings.

MTEB clusters images (CIFAR10Clustering, ImageNet10Clustering ...) with the same
AbsTaskClusteringLegacy evaluator as text, so :class:`ClusteringTask` runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head
from embsel_mlflow.evaluation.base import EvalTask
from embsel_mlflow.families.base import Item
from embsel_mlflow.families.clustering import ClusteringFamily, ClusteringTask
from embsel_mlflow.families.media_classification import ITEMS, labelled_media
from embsel_mlflow.media.items import AUDIO, IMAGE, Media

if TYPE_CHECKING:
    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData


@dataclass
class MediaClusteringExamples:
    texts: list[Media]  # ClusteringExamples' field name, so that ClusteringTask runs on them
    labels: list[str]


class MediaClusteringTask(ClusteringTask):
    """MiniBatchKMeans with one cluster per gold label, scored by V-measure (MTEB's legacy evaluator)."""

    examples_type: ClassVar[type] = MediaClusteringExamples


class ImageClusteringTask(MediaClusteringTask):
    task_type: ClassVar[str] = TaskType.image_clustering


class AudioClusteringTask(MediaClusteringTask):
    task_type: ClassVar[str] = TaskType.audio_clustering


class MediaClusteringFamily(ClusteringFamily):
    """Columns ``<modality>`` (a path under data.root) and ``label`` (e.g. the speaker)."""

    modality: ClassVar[str]
    examples_type: ClassVar[type] = MediaClusteringExamples

    # its own examples type (not ClusteringExamples): the inputs are media items
    def build(  # type: ignore[override]
        self, tables: Tables, split: str, limit: int | None
    ) -> MediaClusteringExamples:
        loaded = tables.split(split, [self.modality, "label"])
        frame = head(tables, loaded, limit)
        items, labels = labelled_media(tables, loaded, frame, self.modality, evaluated=True)
        return MediaClusteringExamples(texts=items, labels=labels)

    def texts(self, examples: Any) -> dict[str | None, list[Item]]:
        return {None: list(examples.texts)}

    def fit_texts(self, data: TaskData) -> tuple[list[Item], str]:
        return list(data.examples.texts), f"{data.split} {ITEMS[self.modality]} (no labels)"


class ImageClusteringFamily(MediaClusteringFamily):
    name: ClassVar[str] = TaskType.image_clustering
    modality: ClassVar[str] = IMAGE
    task_class: ClassVar[type[EvalTask]] = ImageClusteringTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image",)
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "label")


class AudioClusteringFamily(MediaClusteringFamily):
    name: ClassVar[str] = TaskType.audio_clustering
    modality: ClassVar[str] = AUDIO
    task_class: ClassVar[type[EvalTask]] = AudioClusteringTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("audio",)
    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO})
    window_columns: ClassVar[tuple[str, ...] | None] = ("audio", "label")
