"""Semantic textual similarity correlations, as MTEB's STS tasks compute them.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
import pandas as pd

_DESCRIPTION = """\
Pearson and Spearman correlation between predicted similarity scores and gold similarity
scores, as MTEB's AbsTaskSTS computes them with scipy (gold first, prediction second).
Spearman is what scipy's spearmanr computes, numpy's corrcoef of the average ranks, so it is
bitwise scipy's; Pearson is numpy's corrcoef, within 1e-14 of scipy's pearsonr. scipy.stats
is not imported: its import took 0.6 s, a fifth of a warm run. MTEB min/max-normalises the
gold scores first, which leaves both correlations unchanged. An STS task calls this module
once per similarity function (cosine, negated Manhattan and Euclidean distances, dot product)
and prefixes the keys.
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
        gold = np.asarray(references, dtype=np.float64)
        predicted = np.asarray(predictions, dtype=np.float64)
        if np.ptp(gold) == 0 or np.ptp(predicted) == 0:
            return {"pearson": float("nan"), "spearman": float("nan")}  # as scipy: undefined
        # spearmanr's own steps: the two as columns, average ranks per column, corrcoef of those.
        ranks = pd.DataFrame({"gold": gold, "predicted": predicted}).rank(method="average").to_numpy()
        return {
            "pearson": float(np.corrcoef(gold, predicted)[0, 1]),
            "spearman": float(np.corrcoef(ranks, rowvar=False)[1, 0]),
        }
