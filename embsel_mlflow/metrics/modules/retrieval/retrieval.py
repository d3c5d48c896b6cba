"""Ranked retrieval metrics with trec_eval / pytrec_eval definitions, as MTEB reports them.

An evaluate module script: it is loaded by path with ``evaluate.load``, so it imports only
installed packages, one import per line (evaluate parses the imports to check them).
"""

from __future__ import annotations

import math

import datasets
import evaluate

_DESCRIPTION = """\
Ranked retrieval metrics for one ranking per query: nDCG@k, MAP@k, Recall@k and
Precision@k with the trec_eval definitions that pytrec_eval (and therefore MTEB) uses,
plus MRR@k exactly as MTEB computes it.

* Each query's retrieved documents are ranked by score, descending; ties are broken by
  document id, descending (trec_eval's order, which MTEB also uses for MRR).
* nDCG@k (trec_eval ``ndcg_cut``): gain = relevance grade (grades <= 0 gain nothing),
  discount log2(rank + 1); the ideal ranking is built from all judged documents.
* MAP@k (``map_cut``): sum of precision at the rank of each relevant document within the
  top k, divided by the total number of relevant documents (grade >= 1).
* Recall@k (``recall``) and Precision@k (``P``) count documents with grade >= 1;
  Precision@k divides by k even when fewer than k documents were retrieved.
* MRR@k: reciprocal rank of the first document with grade > 0 within the top k, else 0.

Queries without any judged document are skipped, as pytrec_eval skips them. Scores are
averaged over the remaining queries (MTEB additionally rounds the first four families to
5 decimals; this module does not round).
"""

_CITATION = """\
@inproceedings{VanGysel2018pytreceval,
  title={Pytrec\\_eval: An Extremely Fast Python Interface to trec\\_eval},
  author={Van Gysel, Christophe and de Rijke, Maarten},
  booktitle={SIGIR},
  year={2018},
}
@article{muennighoff2022mteb,
  title={MTEB: Massive Text Embedding Benchmark},
  author={Muennighoff, Niklas and Tazi, Nouamane and Magne, Lo{\\"i}c and Reimers, Nils},
  journal={arXiv preprint arXiv:2210.07316},
  year={2022},
}
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: one dict per query, ``{"doc_ids": [...], "scores": [...]}``: the retrieved
        documents and their scores (any order; ranking is by score).
    references: one dict per query, ``{"doc_ids": [...], "relevance": [...]}``: the judged
        documents and their integer relevance grades.
    k_values: cut-offs, default ``[1, 3, 5, 10, 100]``.
    per_query: also return ``per_query``, a dict metric name -> list of per-query values
        (NaN for skipped queries), in input order.
Returns:
    ``ndcg_at_k``, ``map_at_k``, ``recall_at_k``, ``precision_at_k``, ``mrr_at_k`` for each
    k, and ``num_queries`` (the number of queries averaged).
Examples:
    >>> metric = evaluate.load("embsel_mlflow/metrics/modules/retrieval")
    >>> metric.compute(
    ...     predictions=[{"doc_ids": ["d1", "d2"], "scores": [0.9, 0.1]}],
    ...     references=[{"doc_ids": ["d2"], "relevance": [1]}],
    ...     k_values=[1, 2],
    ... )["mrr_at_2"]
    0.5
"""

DEFAULT_K_VALUES = (1, 3, 5, 10, 100)
_FAMILIES = ("ndcg_at", "map_at", "recall_at", "precision_at", "mrr_at")


def rank_documents(doc_ids: list[str], scores: list[float]) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval's order)."""
    if len(doc_ids) != len(scores):
        raise ValueError(f"got {len(doc_ids)} doc_ids but {len(scores)} scores for one query")
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("a query's retrieved doc_ids must be unique")
    return [doc for _, doc in sorted(zip(scores, doc_ids, strict=True), reverse=True)]


def query_metrics(ranked: list[str], grades: dict[str, int], k_values: list[int]) -> dict[str, float]:
    """All metrics for one query, summed in rank order as trec_eval does."""
    num_rel = sum(1 for g in grades.values() if g >= 1)
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)
    out: dict[str, float] = {}
    for k in k_values:
        top = ranked[:k]
        dcg = 0.0
        idcg = 0.0
        ap_sum = 0.0
        hits = 0
        first_hit = 0
        for rank, doc in enumerate(top, start=1):
            grade = grades.get(doc, 0)
            if grade > 0:
                dcg += grade / math.log2(rank + 1)
                if first_hit == 0:
                    first_hit = rank
            if grade >= 1:
                hits += 1
                ap_sum += hits / rank
        for rank, grade in enumerate(ideal[:k], start=1):
            idcg += grade / math.log2(rank + 1)
        out[f"ndcg_at_{k}"] = dcg / idcg if idcg > 0 else 0.0
        out[f"map_at_{k}"] = ap_sum / num_rel if num_rel else 0.0
        out[f"recall_at_{k}"] = hits / num_rel if num_rel else 0.0
        out[f"precision_at_{k}"] = hits / k
        out[f"mrr_at_{k}"] = 1.0 / first_hit if first_hit else 0.0
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Retrieval(evaluate.Metric):
    """nDCG/MAP/Recall/Precision/MRR at k for ranked retrieval."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "scores": datasets.Sequence(datasets.Value("float64")),
                    },
                    "references": {
                        "doc_ids": datasets.Sequence(datasets.Value("string")),
                        "relevance": datasets.Sequence(datasets.Value("int64")),
                    },
                }
            ),
            reference_urls=[
                "https://github.com/cvangysel/pytrec_eval",
                "https://github.com/usnistgov/trec_eval",
            ],
        )

    def _compute(self, predictions, references, k_values=DEFAULT_K_VALUES, per_query=False):
        k_values = sorted({int(k) for k in k_values})
        if not k_values or k_values[0] < 1:
            raise ValueError(f"k_values must be positive integers, got {k_values}")
        names = [f"{family}_{k}" for family in _FAMILIES for k in k_values]
        rows: list[dict[str, float] | None] = []
        for pred, ref in zip(predictions, references, strict=True):
            if len(ref["doc_ids"]) != len(ref["relevance"]):
                raise ValueError("references: doc_ids and relevance differ in length for a query")
            grades = dict(zip(ref["doc_ids"], (int(g) for g in ref["relevance"]), strict=True))
            if not grades:
                rows.append(None)  # no judgements: pytrec_eval (and MTEB) skip the query
                continue
            rows.append(query_metrics(rank_documents(pred["doc_ids"], pred["scores"]), grades, k_values))
        scored = [row for row in rows if row is not None]
        if not scored:
            raise ValueError("no query has any judged document")
        result: dict = {name: sum(row[name] for row in scored) / len(scored) for name in names}
        result["num_queries"] = len(scored)
        if per_query:
            result["per_query"] = {
                name: [row[name] if row is not None else float("nan") for row in rows] for name in names
            }
        return result
