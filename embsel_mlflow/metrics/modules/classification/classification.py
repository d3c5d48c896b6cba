"""Single-label classification scores, as MTEB's classification tasks compute them.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import warnings

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score

_DESCRIPTION = """\
Accuracy, macro and weighted F1 / precision / recall of predicted class ids, computed with
scikit-learn exactly as MTEB's AbsTaskClassification does for one experiment. For binary
tasks (two distinct gold labels, ids 0 and 1) it adds MTEB's ``ap`` and ``ap_weighted``:
average precision of the predicted labels (MTEB scores the hard predictions, not
probabilities).
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
    predictions: predicted class id per item.
    references: gold class id per item.
Returns:
    ``accuracy``, ``f1`` (macro), ``f1_weighted``, ``precision``, ``precision_weighted``,
    ``recall``, ``recall_weighted``; for binary tasks also ``ap`` and ``ap_weighted``.
Examples:
    >>> metric = evaluate.load("embsel_mlflow/metrics/modules/classification")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])["accuracy"]
    0.75
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    """MTEB's per-experiment classification scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://github.com/embeddings-benchmark/mteb"],
        )

    def _compute(self, predictions, references):
        y_true = np.asarray(references)
        y_pred = np.asarray(predictions)
        with warnings.catch_warnings():
            # labels never predicted make precision undefined; sklearn counts them as 0, as in MTEB
            warnings.simplefilter("ignore")
            scores = {
                "accuracy": accuracy_score(y_true, y_pred),
                "f1": f1_score(y_true, y_pred, average="macro"),
                "f1_weighted": f1_score(y_true, y_pred, average="weighted"),
                "precision": precision_score(y_true, y_pred, average="macro"),
                "precision_weighted": precision_score(y_true, y_pred, average="weighted"),
                "recall": recall_score(y_true, y_pred, average="macro"),
                "recall_weighted": recall_score(y_true, y_pred, average="weighted"),
            }
            if len(np.unique(y_true)) == 2:
                scores["ap"] = average_precision_score(y_true, y_pred, average="macro")
                scores["ap_weighted"] = average_precision_score(y_true, y_pred, average="weighted")
        return {name: float(value) for name, value in scores.items()}
