"""Classification: logistic regression on few-shot samples of train embeddings (MTEB's protocol)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import head, texts
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.labels import case_clashes, label_ids
from embsel_mlflow.families.base import PairKind, Splitter, TaskFamily, item_column, item_names

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TextEncoder


@dataclass
class ClassificationExamples:
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def undersample(
    labels: Sequence, samples_per_label: int, seed: int, idxs: list[int] | None = None
) -> tuple[list[int], list[int]]:
    """MTEB's ``_undersample_data``: shuffle ``idxs`` in place, keep the first n per label.

    A fresh ``RandomState(seed)`` shuffles the list carried over from the previous experiment,
    so experiment i sees the i-th successive shuffle. Returns (shuffled idxs, selected idxs).
    """
    if idxs is None:
        idxs = list(range(len(labels)))
    np.random.RandomState(seed).shuffle(idxs)
    counts: dict = defaultdict(int)
    selected = []
    for i in idxs:
        if counts[labels[i]] < samples_per_label:
            selected.append(i)
            counts[labels[i]] += 1
    return idxs, selected


def experiment_samples(
    labels: Sequence, samples_per_label: int, seed: int, n_experiments: int
) -> list[list[int]]:
    """The training indices of every experiment, as MTEB draws them."""
    idxs = None
    selections = []
    for _ in range(n_experiments):
        idxs, selected = undersample(labels, samples_per_label, seed, idxs)
        selections.append(selected)
    return selections


class ClassificationTask(EvalTask):
    """MTEB's AbsTaskClassification.

    ``n_experiments`` times: undersample ``samples_per_label`` train texts per label, fit
    ``LogisticRegression(max_iter, random_state=seed)`` on their embeddings, score the test
    predictions; scores are averaged over experiments. The union of sampled train texts and
    the test texts are each encoded once.
    """

    task_type: ClassVar[str] = TaskType.classification
    main_score_name: ClassVar[str] = "accuracy"
    examples_type: ClassVar[type] = ClassificationExamples
    extra_metric_inputs: ClassVar[str | None] = (
        "predictions=predicted class id per test text, references=gold class id (averaged over experiments)"
    )

    def _validate(self) -> None:
        ex: ClassificationExamples = self.examples
        if len(ex.train_texts) != len(ex.train_labels) or len(ex.test_texts) != len(ex.test_labels):
            raise DataError(f"{self._where()}: texts and labels have different lengths")
        if not ex.train_texts:
            raise DataError(
                f"{self._where()}: the train split is empty; set data.train_split to a labelled table"
            )
        if not ex.test_texts:
            raise DataError(f"{self._where()}: the evaluation split is empty")
        if len(set(ex.train_labels)) < 2:
            raise DataError(f"{self._where()}: the train split needs at least 2 distinct labels")
        self._check_test_labels()
        for key in ("n_experiments", "samples_per_label", "max_iter"):
            if getattr(self.cfg, key) < 1:
                raise ConfigError(f"evaluation.{key} must be >= 1, got {getattr(self.cfg, key)}")

    def _check_test_labels(self) -> None:
        """Test labels the classifier can never predict: all of them (or a case mismatch) is an error."""
        ex: ClassificationExamples = self.examples
        train = set(ex.train_labels)
        case_clashes(self, ex.train_labels, "train")
        unseen = Counter(label for label in ex.test_labels if label not in train)
        if not unseen:
            return
        by_fold = {label.casefold(): label for label in train}
        recased = {label: by_fold[label.casefold()] for label in unseen if label.casefold() in by_fold}
        if recased:
            test_label, train_label = next(iter(recased.items()))
            raise DataError(
                f"{self._where()}: {len(recased)} test label(s) differ from a train label only in case, "
                f"e.g. test {test_label!r} vs train {train_label!r}; make the labels identical"
            )
        rows = sum(unseen.values())
        if rows == len(ex.test_labels):
            raise DataError(
                f"{self._where()}: no test label occurs in the train split (e.g. {next(iter(unseen))!r}), "
                "so no prediction can be right; check data.train_split and the label columns"
            )
        self.warn(
            "test_labels_not_in_train",
            f"{rows} of {len(ex.test_labels)} test rows have one of {len(unseen)} label(s) never seen in "
            f"train (e.g. {next(iter(unseen))!r}); they can never be predicted correctly",
            rows,
        )

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        import pandas as pd
        from tqdm.auto import tqdm

        from embsel_mlflow.metrics import load_metric

        ex: ClassificationExamples = self.examples
        cfg = self.cfg
        ids = label_ids(ex.train_labels, ex.test_labels)
        y_train = np.asarray([ids[str(label)] for label in ex.train_labels], dtype=np.int64)
        y_test = np.asarray([ids[str(label)] for label in ex.test_labels], dtype=np.int64)

        selections = experiment_samples(y_train.tolist(), cfg.samples_per_label, cfg.seed, cfg.n_experiments)
        union = sorted(set().union(*selections))
        position = {index: row for row, index in enumerate(union)}
        train_embeddings = self._encode(encoder, [ex.train_texts[i] for i in union])
        test_embeddings = self._encode(encoder, ex.test_texts)

        metric = load_metric("classification")
        runs, metric_inputs, predictions = [], [], []
        for selected in tqdm(selections, desc="Classification experiments", disable=not cfg.show_progress):
            features = train_embeddings[[position[i] for i in selected]]
            predicted = self._fit_predict(features, y_train[selected], test_embeddings)
            runs.append(metric.compute(predictions=predicted.tolist(), references=y_test.tolist()))
            metric_inputs.append((predicted.tolist(), y_test.tolist()))
            predictions.append(predicted)

        scores = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
        names = {index: label for label, index in ids.items()}
        # Per text: the majority vote of the n_experiments classifiers (ties: lowest class id) and
        # the share of classifiers that voted for it; one experiment's guess would be arbitrary.
        votes = np.apply_along_axis(np.bincount, 0, np.stack(predictions), minlength=len(ids))
        majority = votes.argmax(axis=0)
        per_item = pd.DataFrame(
            {
                item_column(ex.test_texts): item_names(ex.test_texts),
                "label": [str(label) for label in ex.test_labels],
                "predicted": [names[int(i)] for i in majority],
                "agreement": votes.max(axis=0) / len(predictions),
            }
        )
        return TaskOutput(scores=scores, per_item=per_item, metric_inputs=metric_inputs)

    def _fit_predict(self, features: np.ndarray, labels: np.ndarray, test_features: np.ndarray) -> np.ndarray:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        classifier = LogisticRegression(max_iter=self.cfg.max_iter, random_state=self.cfg.seed)
        with warnings.catch_warnings():
            # MTEB's max_iter=100 often stops before convergence; that is part of the protocol
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(features, labels.tolist())
        return classifier.predict(test_features)


def within_class_pairs(
    texts: list[str], labels: list[str], per_class: int, seed: int
) -> dict[str, list[Any]]:
    """(anchor, positive) pairs of distinct texts of the same class, ``per_class`` per class at most."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels, strict=True):
        if text not in by_class[label]:
            by_class[label].append(text)
    anchors, positives = [], []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            continue
        for _ in range(per_class):
            first, second = rng.choice(len(members), size=2, replace=False)
            anchors.append(members[first])
            positives.append(members[second])
    return {"anchor": anchors, "positive": positives}


class ClassificationFamily(TaskFamily):
    """A train split the classifier is fitted on and the evaluated split; items are test texts."""

    name: ClassVar[str] = TaskType.classification
    evaluation_settings: ClassVar[frozenset[str]] = frozenset(
        {"n_experiments", "samples_per_label", "max_iter"}
    )
    data_settings: ClassVar[frozenset[str]] = frozenset({"train_split"})
    examples_type: ClassVar[type] = ClassificationExamples
    task_class: ClassVar[type[EvalTask]] = ClassificationTask
    window_columns: ClassVar[tuple[str, ...] | None] = ("text", "label")
    pair_kind: ClassVar[PairKind | None] = PairKind.positive

    def build(self, tables: Tables, split: str, limit: int | None) -> ClassificationExamples:
        train = tables.split(tables.cfg.train_split, ["text", "label"])
        test = tables.split(split, ["text", "label"])
        frame = head(tables, test, limit)
        return ClassificationExamples(
            train_texts=texts(train.frame, "text", train),
            train_labels=texts(train.frame, "label", train, what="label"),
            test_texts=texts(frame, "text", test),
            test_labels=texts(frame, "label", test, what="label"),
        )

    def item_count(self, examples: Any) -> int:
        return len(examples.test_texts)

    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        return {None: list(examples.test_texts)}

    def calibration_texts(self, examples: Any) -> list[str]:
        return list(examples.train_texts)

    def fit_texts(self, data: TaskData) -> tuple[list[str], str]:
        return list(data.examples.train_texts), "train texts"

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """Accuracy of the predictions on each resample."""
        return resampled_accuracy(per_item, indices)

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """(anchor, positive) drawn within each class of the train texts."""
        return within_class_pairs(examples.train_texts, examples.train_labels, pairs_per_class, seed)

    def hold_out(self, examples: Any, split: Splitter) -> tuple[Any, Any]:
        """Train texts held out as the validation part's test texts (the classifier keeps the rest)."""
        keep, held = split(len(examples.train_texts))
        texts, labels = examples.train_texts, examples.train_labels
        train_texts, train_labels = [texts[i] for i in keep], [labels[i] for i in keep]
        same = type(examples)  # media families keep their own examples type
        return (
            same(train_texts, train_labels, [], []),
            same(train_texts, train_labels, [texts[i] for i in held], [labels[i] for i in held]),
        )


def resampled_accuracy(per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
    """Accuracy of the per-item ``predicted`` vs ``label`` columns on each row of ``indices``."""
    correct = (per_item["label"].astype(str) == per_item["predicted"].astype(str)).to_numpy(dtype=np.float64)
    return correct[indices].mean(axis=1)
