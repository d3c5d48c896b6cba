"""Semantic textual similarity correlations, as MTEB's STS tasks compute them.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr

_DESCRIPTION = """\
Pearson and Spearman correlation between predicted similarity scores and gold similarity
scores, computed with scipy exactly as MTEB's AbsTaskSTS does (gold first, prediction
second). MTEB min/max-normalises the gold scores first, which leaves both correlations
unchanged. An STS task calls this module once per similarity function (cosine, negated
Manhattan and Euclidean distances, dot product) and prefixes the keys.
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
    predictions: predicted similarity per pair (higher = more similar).
    references: gold similarity per pair.
Returns:
    ``pearson`` and ``spearman``.
Examples:
    >>> metric = evaluate.load("embsel_mlflow/metrics/modules/sts")
    >>> metric.compute(predictions=[0.1, 0.5, 0.9], references=[1.0, 2.0, 4.0])["spearman"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sts(evaluate.Metric):
    """Pearson and Spearman correlation of predicted vs gold similarity."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=["https://github.com/embeddings-benchmark/mteb"],
        )

    def _compute(self, predictions, references):
        if len(predictions) < 2:
            raise ValueError("correlations need at least 2 pairs")
        return {
            "pearson": float(pearsonr(references, predictions)[0]),
            "spearman": float(spearmanr(references, predictions)[0]),
        }
