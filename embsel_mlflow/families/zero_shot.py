"""Zero-shot image classification: each image takes the class whose text prompt it is most similar to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head, texts
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.labels import case_clashes, label_ids
from embsel_mlflow.families.base import Item, PairKind, Splitter, TaskFamily, item_column, item_names
from embsel_mlflow.families.classification import resampled_accuracy
from embsel_mlflow.families.media_classification import labelled_media
from embsel_mlflow.media.items import IMAGE, Media

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TextEncoder

# CLIP's logit scale: MTEB turns image-text cosines into probabilities as softmax(100 * cosine).
LOGIT_SCALE = 100.0


@dataclass
class ZeroShotExamples:
    items: list[Media]
    labels: list[str]  # gold class name per item
    classes: list[str]  # the candidate class names, in class-id order
    prompts: list[str]  # the text each class is embedded as (data.label_template)


def class_prompts(template: str, classes: list[str]) -> list[str]:
    """``template`` with each class name for ``{label}``; a template that does not name it is refused."""
    try:
        prompts = [template.format(label=name) for name in classes]
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"data.label_template {template!r} is not a template: {err}; write the class name as "
            "{label} (e.g. 'a photo of a {label}.') and double any other brace"
        ) from None
    if "{label}" not in template:
        raise ConfigError(
            f"data.label_template {template!r} does not contain {{label}}, so every class would get "
            "the same prompt; e.g. 'a photo of a {label}.'"
        )
    return prompts


def zero_shot_probabilities(prompt_embeddings: np.ndarray, item_embeddings: np.ndarray) -> np.ndarray:
    """(items, classes) softmax of 100 x cosine, in float32 torch, as MTEB's ``similarity`` computes it."""
    import torch

    prompts = torch.tensor(np.asarray(prompt_embeddings), dtype=torch.float32)
    items = torch.tensor(np.asarray(item_embeddings), dtype=torch.float32)
    prompts = prompts / prompts.norm(dim=-1, keepdim=True)
    items = items / items.norm(dim=-1, keepdim=True)
    return ((items @ prompts.T) * LOGIT_SCALE).softmax(dim=-1).numpy()


class ZeroShotClassificationTask(EvalTask):
    """MTEB's AbsTaskZeroShotClassification (image-text tasks, e.g. STL10ZeroShot).

    The class prompts and the items are encoded; an item's prediction is the argmax over classes
    of softmax(100 x cosine); scores are sklearn's, as MTEB computes them. For two classes ``ap``
    ranks items by the probability of the second class, as MTEB does.
    """

    task_type: ClassVar[str] = TaskType.zero_shot_image_classification
    main_score_name: ClassVar[str] = "accuracy"
    examples_type: ClassVar[type] = ZeroShotExamples
    extra_metric_inputs: ClassVar[str | None] = (
        "predictions=predicted class id per item, references=gold class id"
    )

    def _validate(self) -> None:
        ex: ZeroShotExamples = self.examples
        if len(ex.items) != len(ex.labels):
            raise DataError(f"{self._where()}: items and labels have different lengths")
        if not ex.items:
            raise DataError(f"{self._where()}: the evaluation split is empty")
        if len(ex.classes) < 2 or len(ex.prompts) != len(ex.classes):
            raise DataError(f"{self._where()}: zero-shot needs 2 or more classes, with a prompt each")
        unknown = sorted(set(ex.labels) - set(ex.classes))
        if unknown:
            raise DataError(f"{self._where()}: label(s) {unknown[:3]} are not among the classes {ex.classes}")
        case_clashes(self, ex.classes, "class")
        repeated = len(ex.prompts) - len(set(ex.prompts))
        if repeated:
            raise ConfigError(
                f"{self._where()}: {repeated} class prompt(s) repeat another class's prompt; the classes "
                "cannot be told apart (check data.label_template)"
            )

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        import pandas as pd
        from sklearn.metrics import average_precision_score

        from embsel_mlflow.metrics import load_metric

        ex: ZeroShotExamples = self.examples
        ids = {name: index for index, name in enumerate(ex.classes)}
        gold = [ids[label] for label in ex.labels]
        prompt_embeddings = self._encode(encoder, ex.prompts)
        probabilities = zero_shot_probabilities(prompt_embeddings, self._encode(encoder, ex.items))
        predicted = probabilities.argmax(axis=1)
        scores = load_metric("classification").compute(predictions=predicted.tolist(), references=gold)
        # MTEB scores ap on the probabilities (not on the hard predictions as its classification does)
        scores.pop("ap", None)
        scores.pop("ap_weighted", None)
        if len(ex.classes) == 2 and len(set(gold)) == 2:
            for key, average in (("ap", "macro"), ("ap_weighted", "weighted")):
                scores[key] = float(average_precision_score(gold, probabilities[:, 1], average=average))
        per_item = pd.DataFrame(
            {
                item_column(ex.items): item_names(ex.items),
                "label": ex.labels,
                "predicted": [ex.classes[i] for i in predicted],
                "probability": probabilities.max(axis=1),
            }
        )
        return TaskOutput(scores=scores, per_item=per_item, metric_inputs=[(predicted.tolist(), gold)])


class ZeroShotImageClassificationFamily(TaskFamily):
    """Columns ``image`` and ``label``; the classes are the split's labels, prompted by data.label_template.

    Its training pairs are (image, its class prompt): a CLIP model can be fine-tuned on them.
    """

    name: ClassVar[str] = TaskType.zero_shot_image_classification
    data_settings: ClassVar[frozenset[str]] = frozenset({"label_template"})
    examples_type: ClassVar[type] = ZeroShotExamples
    task_class: ClassVar[type[EvalTask]] = ZeroShotClassificationTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image",)
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE, "text"})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "label")
    pair_kind: ClassVar[PairKind | None] = PairKind.media_text

    def build(self, tables: Tables, split: str, limit: int | None) -> ZeroShotExamples:
        loaded = tables.split(split, [IMAGE, "label"])
        # the classes are those of the whole split, also when data.limit evaluates its first rows only
        classes = list(label_ids(texts(loaded.frame, "label", loaded, what="label")))  # in class-id order
        items, labels = labelled_media(tables, loaded, head(tables, loaded, limit), IMAGE, evaluated=True)
        prompts = class_prompts(tables.cfg.label_template, classes)
        return ZeroShotExamples(items=items, labels=labels, classes=classes, prompts=prompts)

    def item_count(self, examples: Any) -> int:
        return len(examples.items)

    def texts(self, examples: Any) -> dict[str | None, list[Item]]:
        """The images; the class prompts are embedded too, but they are the config's, not the data's."""
        return {None: list(examples.items)}

    def fit_texts(self, data: TaskData) -> tuple[list[Item], str]:
        return list(data.examples.items), f"{data.split} images (no labels)"

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """Accuracy of the predictions on each resample."""
        return resampled_accuracy(per_item, indices)

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """(image, the prompt of its class) for every item (``pairs_per_class`` does not apply)."""
        prompt = dict(zip(examples.classes, examples.prompts, strict=True))
        return {IMAGE: list(examples.items), "text": [prompt[label] for label in examples.labels]}

    def hold_out(self, examples: Any, split: Splitter) -> tuple[Any, Any]:
        """Items held out; both parts keep every class."""
        keep, held = split(len(examples.items))

        def subset(indices: np.ndarray) -> ZeroShotExamples:
            return ZeroShotExamples(
                items=[examples.items[i] for i in indices],
                labels=[examples.labels[i] for i in indices],
                classes=examples.classes,
                prompts=examples.prompts,
            )

        return subset(keep), subset(held)
