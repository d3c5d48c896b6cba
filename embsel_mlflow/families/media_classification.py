"""Image and audio classification: MTEB's logistic-regression protocol on image or audio embeddings.

MTEB evaluates image classification (MIEB) and audio classification with the same
AbsTaskClassification as text, so :class:`ClassificationTask` runs unchanged: only the inputs
are :class:`~embsel_mlflow.media.Media` items instead of texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head, media, texts
from embsel_mlflow.evaluation.base import EvalTask
from embsel_mlflow.families.base import Item, PairKind, TaskFamily
from embsel_mlflow.families.classification import ClassificationFamily, ClassificationTask
from embsel_mlflow.media.items import AUDIO, IMAGE, Media

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Loaded, Tables
    from embsel_mlflow.data.task_data import TaskData


# How messages name a modality's items.
ITEMS = {IMAGE: "images", AUDIO: "audio clips"}


def labelled_media(
    tables: Tables, loaded: Loaded, frame: pd.DataFrame, modality: str, *, evaluated: bool = False
) -> tuple[list[Media], list[str]]:
    """The checked items of ``frame``'s media column and their labels.

    Rows whose file is bad are an error, or (``data.on_bad_media=skip``) left out of both lists.
    ``evaluated``: ``frame`` is the evaluated table, so the rows kept are what the run records.
    """
    texts(frame, "label", loaded, what="label")  # every label checked first, with the file's row numbers
    kept, items = media(tables, frame, modality, loaded, modality)
    if evaluated:
        tables.limit_last(kept)
    return items, texts(kept, "label", loaded, what="label")


@dataclass
class MediaClassificationExamples:
    """ClassificationExamples' fields with image or audio items as the inputs.

    The ``*_texts`` names are ClassificationExamples' own, so that ClassificationTask runs on them.
    """

    train_texts: list[Media]
    train_labels: list[str]
    test_texts: list[Media]
    test_labels: list[str]


class MediaClassificationTask(ClassificationTask):
    """MTEB's AbsTaskClassification on image or audio items (``n_experiments`` few-shot logistic fits)."""

    examples_type: ClassVar[type] = MediaClassificationExamples


class ImageClassificationTask(MediaClassificationTask):
    task_type: ClassVar[str] = TaskType.image_classification


class AudioClassificationTask(MediaClassificationTask):
    task_type: ClassVar[str] = TaskType.audio_classification


class MediaClassificationFamily(ClassificationFamily):
    """Columns ``<modality>`` (a path under data.root) and ``label``; items are the test items.

    No training pairs: a label gives no caption for a contrastive image-text or audio-text model.
    """

    modality: ClassVar[str]
    examples_type: ClassVar[type] = MediaClassificationExamples
    pair_kind: ClassVar[PairKind | None] = None
    pair_columns = TaskFamily.pair_columns  # none: see pair_kind

    # its own examples type (not ClassificationExamples): the inputs are media items
    def build(  # type: ignore[override]
        self, tables: Tables, split: str, limit: int | None
    ) -> MediaClassificationExamples:
        modality = self.modality
        train = tables.split(tables.cfg.train_split, [modality, "label"])
        train_items, train_labels = labelled_media(tables, train, train.frame, modality)
        test = tables.split(split, [modality, "label"])
        test_items, test_labels = labelled_media(
            tables, test, head(tables, test, limit), modality, evaluated=True
        )
        return MediaClassificationExamples(train_items, train_labels, test_items, test_labels)

    def fit_texts(self, data: TaskData) -> tuple[list[Item], str]:
        return list(data.examples.train_texts), f"train {ITEMS[self.modality]} (no labels)"

    def texts(self, examples: Any) -> dict[str | None, list[Item]]:
        return {None: list(examples.test_texts)}


class ImageClassificationFamily(MediaClassificationFamily):
    name: ClassVar[str] = TaskType.image_classification
    modality: ClassVar[str] = IMAGE
    task_class: ClassVar[type[EvalTask]] = ImageClassificationTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image",)
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "label")


class AudioClassificationFamily(MediaClassificationFamily):
    name: ClassVar[str] = TaskType.audio_classification
    modality: ClassVar[str] = AUDIO
    task_class: ClassVar[type[EvalTask]] = AudioClassificationTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("audio",)
    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO})
    window_columns: ClassVar[tuple[str, ...] | None] = ("audio", "label")
