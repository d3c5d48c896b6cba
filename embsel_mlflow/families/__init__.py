"""Task families: one registered object per kind of task (its examples, texts, evaluation, statistics).

The built-ins (retrieval, sts, pair_classification, classification, clustering, and the image and
audio families of ``media_classification``, ``media_clustering``, ``zero_shot`` and
``cross_modal_retrieval``) are registered here; a new family registers itself with
:func:`register_family` and is then usable as ``data.task=<name>`` by every step.
"""

from embsel_mlflow.families.base import PairKind, TaskFamily
from embsel_mlflow.families.classification import ClassificationExamples, ClassificationFamily
from embsel_mlflow.families.clustering import ClusteringExamples, ClusteringFamily
from embsel_mlflow.families.cross_modal_retrieval import (
    AudioToTextRetrievalFamily,
    CrossModalExamples,
    ImageToTextRetrievalFamily,
    TextToAudioRetrievalFamily,
    TextToImageRetrievalFamily,
)
from embsel_mlflow.families.loading import build_task, load_task_data
from embsel_mlflow.families.media_classification import (
    AudioClassificationFamily,
    ImageClassificationFamily,
    MediaClassificationExamples,
)
from embsel_mlflow.families.media_clustering import (
    AudioClusteringFamily,
    ImageClusteringFamily,
    MediaClusteringExamples,
)
from embsel_mlflow.families.pair_classification import PairClassificationExamples, PairClassificationFamily
from embsel_mlflow.families.registry import (
    FAMILIES,
    TASKS,
    check_families,
    family_of,
    get_family,
    register_family,
    unregister_family,
)
from embsel_mlflow.families.retrieval import RetrievalExamples, RetrievalFamily
from embsel_mlflow.families.sts import STSExamples, STSFamily
from embsel_mlflow.families.zero_shot import ZeroShotExamples, ZeroShotImageClassificationFamily

# In the order the unknown-task error lists them.
for _family in (
    RetrievalFamily(),
    STSFamily(),
    PairClassificationFamily(),
    ClassificationFamily(),
    ClusteringFamily(),
    ImageClassificationFamily(),
    ImageClusteringFamily(),
    ZeroShotImageClassificationFamily(),
    ImageToTextRetrievalFamily(),
    TextToImageRetrievalFamily(),
    AudioClassificationFamily(),
    AudioClusteringFamily(),
    AudioToTextRetrievalFamily(),
    TextToAudioRetrievalFamily(),
):
    register_family(_family, replace=True)

__all__ = [
    "FAMILIES",
    "TASKS",
    "ClassificationExamples",
    "ClusteringExamples",
    "CrossModalExamples",
    "MediaClassificationExamples",
    "MediaClusteringExamples",
    "PairClassificationExamples",
    "PairKind",
    "RetrievalExamples",
    "STSExamples",
    "TaskFamily",
    "ZeroShotExamples",
    "build_task",
    "check_families",
    "family_of",
    "get_family",
    "load_task_data",
    "register_family",
    "unregister_family",
]
