"""Clustering quality against gold labels, as MTEB's clustering tasks compute it.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import datasets
import evaluate
from scipy.optimize import linear_sum_assignment
from sklearn import metrics

_DESCRIPTION = """\
V-measure (MTEB's main clustering score) between predicted cluster ids and gold label ids,
plus the other scores MTEB's AbsTaskClusteringLegacy reports for a single cluster set:
normalised mutual information, adjusted Rand index and cluster accuracy (the fraction of
items on the best one-to-one matching of clusters to labels, Hungarian algorithm).
"""

_CITATION = """\
@inproceedings{rosenberg2007vmeasure,
  title={V-Measure: A Conditional Entropy-Based External Cluster Evaluation Measure},
  author={Rosenberg, Andrew and Hirschberg, Julia},
  booktitle={EMNLP-CoNLL},
  year={2007},
}
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: predicted cluster id per item.
    references: gold label id per item.
Returns:
    ``v_measure``, ``nmi``, ``ari``, ``cluster_accuracy``.
Examples:
    >>> metric = evaluate.load("embsel_mlflow/metrics/modules/clustering")
    >>> metric.compute(predictions=[1, 1, 0, 0], references=[0, 0, 1, 1])["v_measure"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Clustering(evaluate.Metric):
    """V-measure, NMI, ARI and cluster accuracy of a clustering."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/clustering.html#clustering-evaluation"],
        )

    def _compute(self, predictions, references):
        matrix = metrics.confusion_matrix(references, predictions)
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        return {
            "v_measure": float(metrics.v_measure_score(references, predictions)),
            "nmi": float(metrics.normalized_mutual_info_score(references, predictions)),
            "ari": float(metrics.adjusted_rand_score(references, predictions)),
            "cluster_accuracy": float(matrix[rows, cols].sum() / len(references)),
        }
