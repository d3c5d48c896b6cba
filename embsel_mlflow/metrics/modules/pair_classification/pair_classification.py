"""Pair classification scores, with MTEB's exact threshold search.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score

_DESCRIPTION = """\
Scores a similarity (or distance) per pair against binary labels (1 = positive pair) the
way MTEB's AbsTaskPairClassification does:

* ``ap``: average precision of the scores (negated when lower means more similar).
* ``accuracy`` / ``accuracy_threshold``: best accuracy over all thresholds between two
  consecutive distinct sorted scores, and the midpoint threshold that reaches it.
* ``f1`` / ``precision`` / ``recall`` / ``f1_threshold``: the same search for the best F1.

Thresholds never split tied scores, as in MTEB.
"""

_CITATION = """\
@article{muennighoff2022mteb,
  title={MTEB: Massive Text Embedding Benchmark},
  author={Muennighoff, Niklas and Tazi, Nouamane and Magne, Lo{\\"i}c and Reimers, Nils},
  journal={arXiv preprint arXiv:2210.07316},
  year={2022},
}
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: score per pair.
    references: label per pair, 0 or 1.
    high_score_more_similar: True for similarities (cosine, dot), False for distances
        (Euclidean, Manhattan). Default True.
Returns:
    ``accuracy``, ``accuracy_threshold``, ``f1``, ``f1_threshold``, ``precision``,
    ``recall``, ``ap``.
Examples:
    >>> metric = evaluate.load("embsel_mlflow/metrics/modules/pair_classification")
    >>> metric.compute(predictions=[0.9, 0.8, 0.3, 0.1], references=[1, 1, 0, 0])["accuracy"]
    1.0
"""


def find_best_acc_and_threshold(scores, labels, high_score_more_similar):
    """MTEB's ``_find_best_acc_and_threshold``, line for line."""
    rows = list(zip(scores, labels, strict=True))
    rows = sorted(rows, key=lambda x: x[0], reverse=high_score_more_similar)

    max_acc = 0
    best_threshold = -1.0
    positive_so_far = 0
    remaining_negatives = sum(labels == 0)

    for i in range(len(rows) - 1):
        score, label = rows[i]
        if label == 1:
            positive_so_far += 1
        else:
            remaining_negatives -= 1
        # a threshold cannot split tied scores
        if score == rows[i + 1][0]:
            continue
        acc = (positive_so_far + remaining_negatives) / len(labels)
        if acc > max_acc:
            max_acc = acc
            best_threshold = (rows[i][0] + rows[i + 1][0]) / 2
    return max_acc, best_threshold


def find_best_f1_and_threshold(scores, labels, high_score_more_similar):
    """MTEB's ``_find_best_f1_and_threshold``, line for line."""
    rows = list(zip(scores, labels, strict=True))
    rows = sorted(rows, key=lambda x: x[0], reverse=high_score_more_similar)

    best_f1 = best_precision = best_recall = 0.0
    threshold = 0.0
    ncorrect = 0
    total_num_duplicates = sum(labels)

    for i, (score, label) in enumerate(rows[:-1]):
        if label == 1:
            ncorrect += 1
        if score == rows[i + 1][0]:
            continue
        if ncorrect > 0:
            precision = ncorrect / (i + 1)
            recall = ncorrect / total_num_duplicates
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                best_precision = precision
                best_recall = recall
                threshold = (rows[i][0] + rows[i + 1][0]) / 2
    return best_f1, best_precision, best_recall, threshold


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PairClassification(evaluate.Metric):
    """AP and best-threshold accuracy/F1 of pair scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://github.com/embeddings-benchmark/mteb"],
        )

    def _compute(self, predictions, references, high_score_more_similar=True):
        labels = np.asarray(references, dtype=np.int64)
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("pair classification labels must be 0 or 1")
        scores = [float(s) for s in predictions]
        acc, acc_threshold = find_best_acc_and_threshold(scores, labels, high_score_more_similar)
        f1, precision, recall, f1_threshold = find_best_f1_and_threshold(
            scores, labels, high_score_more_similar
        )
        sign = 1 if high_score_more_similar else -1
        ap = average_precision_score(labels, np.array(scores) * sign)
        return {
            "accuracy": float(acc),
            "accuracy_threshold": float(acc_threshold),
            "f1": float(f1),
            "f1_threshold": float(f1_threshold),
            "precision": float(precision),
            "recall": float(recall),
            "ap": float(ap),
        }
