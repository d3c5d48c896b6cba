"""Retrieval: exact cosine search of queries over the corpus, scored with trec_eval metrics."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import check_known, corpus_texts, integers, texts, unique_ids
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput
from embsel_mlflow.evaluation.search import StreamingTopK
from embsel_mlflow.families.base import PairKind, Splitter, TaskFamily, item_names
from embsel_mlflow.models.base import Ranker

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.data.tables import Loaded, Tables
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TextEncoder


@dataclass
class RetrievalExamples:
    corpus: Mapping[str, str]  # doc id -> text ("title text" when a title exists), in corpus order
    queries: dict[str, str]  # query id -> text, only queries that appear in the qrels
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}


PER_ITEM_K = 10  # per-query table columns use @10 (MTEB's main cut-off) when it is evaluated
PER_ITEM_TOP_DOCS = 10


MAIN_K = 10


class RetrievalTask(EvalTask):
    """MTEB's AbsTaskRetrieval with an exact, chunked full-corpus search.

    As in MTEB: queries without qrels are dropped, the search keeps ``max(k_values)`` hits
    per query, and ``ignore_identical_ids`` removes a query's own id from those hits.
    """

    task_type: ClassVar[str] = TaskType.retrieval
    main_score_name: ClassVar[str] = f"ndcg_at_{MAIN_K}"
    examples_type: ClassVar[type] = RetrievalExamples

    def _validate(self) -> None:
        ex: RetrievalExamples = self.examples
        if not ex.corpus:
            raise DataError(f"{self._where()}: the corpus is empty")
        query_ids = self._query_ids()
        if not query_ids:
            raise DataError(
                f"{self._where()}: no query has a qrels entry; check the qrels ids against the queries"
            )
        self._check_grades(query_ids)
        k_values = self.cfg.k_values
        if not k_values or min(k_values) < 1:
            raise ConfigError(f"evaluation.k_values must be positive integers, got {list(k_values)}")
        if self.cfg.corpus_chunk_size < 1:
            raise ConfigError(f"evaluation.corpus_chunk_size must be >= 1, got {self.cfg.corpus_chunk_size}")

    def _check_grades(self, query_ids: list[str]) -> None:
        """No relevant document at all is an error; queries without one are a warning (they score 0)."""
        ex: RetrievalExamples = self.examples
        grades = [grade for qid in query_ids for grade in ex.qrels[qid].values()]
        if max(grades) <= 0:
            raise DataError(
                f"{self._where()}: every qrels score is 0 or negative, so no document is relevant and "
                "every retrieval score would be 0; relevant documents need a score >= 1 (check the "
                "qrels score column)"
            )
        without = [qid for qid in query_ids if max(ex.qrels[qid].values()) <= 0]
        if without:
            self.warn(
                "queries_without_relevant_documents",
                f"{len(without)} of {len(query_ids)} queries (e.g. {without[0]!r}) have no document with "
                "a qrels score >= 1; they score 0 and lower every average",
                len(without),
            )
        negative = sum(grade < 0 for grade in grades)
        if negative:
            self.warn(
                "negative_qrels",
                f"{negative} qrels score(s) are negative; they count as not relevant (as in trec_eval)",
                negative,
            )

    def _query_ids(self) -> list[str]:
        ex: RetrievalExamples = self.examples
        return [qid for qid in ex.queries if ex.qrels.get(qid)]

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        from embsel_mlflow.metrics import load_metric

        ex: RetrievalExamples = self.examples
        query_ids = self._query_ids()
        # nDCG@10 is the main score, so k=10 is always evaluated whatever k_values says.
        k_values = sorted({*self.cfg.k_values, MAIN_K})
        doc_ids = list(ex.corpus)
        if isinstance(encoder, Ranker):  # a lexical ranker (BM25): no embeddings, same scoring below
            scores, indices = self._rank(encoder, query_ids, doc_ids, max(k_values))
        else:
            scores, indices = self._search(encoder, query_ids, doc_ids, max(k_values))

        predictions = []
        for row, qid in enumerate(query_ids):
            hits = [(doc_ids[j], float(s)) for j, s in zip(indices[row], scores[row], strict=True)]
            if self.cfg.ignore_identical_ids:
                hits = [(doc, s) for doc, s in hits if doc != qid]
            predictions.append({"doc_ids": [doc for doc, _ in hits], "scores": [s for _, s in hits]})
        references = [
            {"doc_ids": list(ex.qrels[qid]), "relevance": [int(g) for g in ex.qrels[qid].values()]}
            for qid in query_ids
        ]
        result = load_metric("retrieval").compute(
            predictions=predictions, references=references, k_values=k_values, per_query=True
        )
        per_query = result.pop("per_query")
        result.pop("num_queries")
        per_item = self._per_item(query_ids, predictions, per_query, k_values)
        return TaskOutput(scores=result, per_item=per_item)

    def _search(
        self, encoder: TextEncoder, query_ids: list[str], doc_ids: list[str], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine top-k of the query embeddings over the corpus, encoded chunk by chunk."""
        from tqdm.auto import tqdm

        ex: RetrievalExamples = self.examples
        # int8/binary stored embeddings (models/stored_embeddings.py): the candidate searches its
        # quantized corpus itself, fed the float embeddings (rescoring needs float queries)
        stored_search = getattr(encoder, "stored_search", None)
        source: TextEncoder = encoder.float_encoder if stored_search is not None else encoder  # type: ignore[attr-defined]
        query_embeddings = self._encode(source, [ex.queries[qid] for qid in query_ids], role="query")
        chunk = self.cfg.corpus_chunk_size
        search = stored_search(query_embeddings, k) if stored_search is not None else None
        search = search or StreamingTopK(query_embeddings, k)
        starts = range(0, len(doc_ids), chunk)
        documents = iter(ex.corpus.values())  # corpus order, as doc_ids; one chunk's texts at a time
        for _ in tqdm(
            starts, desc="Searching corpus chunks", disable=not self.cfg.show_progress or len(starts) < 2
        ):
            search.add(self._encode(source, list(itertools.islice(documents, chunk)), role="document"))
        return search.result()

    def _rank(
        self, ranker: Ranker, query_ids: list[str], doc_ids: list[str], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ranker's own top-k, timed and counted like encoding (every text is processed once)."""
        ex: RetrievalExamples = self.examples
        queries = [ex.queries[qid] for qid in query_ids]
        docs = list(ex.corpus.values())  # corpus order, as doc_ids (a lookup per id is slower)
        start = time.perf_counter()
        scores, indices = ranker.rank(queries, docs, k)
        self._encode_seconds += time.perf_counter() - start
        self._num_texts_encoded += len(queries) + len(docs)
        return scores, indices

    def _per_item(
        self,
        query_ids: list[str],
        predictions: list[dict],
        per_query: dict[str, list[float]],
        k_values: list[int],
    ) -> pd.DataFrame:
        import pandas as pd

        ex: RetrievalExamples = self.examples
        k = PER_ITEM_K if PER_ITEM_K in k_values else max(k_values)
        queries = item_names([ex.queries[qid] for qid in query_ids])
        frame = pd.DataFrame({"query_id": query_ids, "query": queries})
        for family in ("ndcg_at", "recall_at", "mrr_at"):
            frame[f"{family}_{k}"] = per_query[f"{family}_{k}"]
        frame["top_doc_ids"] = [pred["doc_ids"][:PER_ITEM_TOP_DOCS] for pred in predictions]
        frame["relevant_doc_ids"] = [
            [doc for doc, grade in ex.qrels[qid].items() if grade > 0] for qid in query_ids
        ]
        return frame


class RetrievalFamily(TaskFamily):
    """Queries ranked over a corpus; the split tables are qrels; items are queries."""

    name: ClassVar[str] = TaskType.retrieval
    evaluation_settings: ClassVar[frozenset[str]] = frozenset(
        {"k_values", "corpus_chunk_size", "ignore_identical_ids"}
    )
    examples_type: ClassVar[type] = RetrievalExamples
    task_class: ClassVar[type[EvalTask]] = RetrievalTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("text", "title")
    monitor_role: ClassVar[str | None] = "query"
    qrels_splits: ClassVar[bool] = True
    ranks_documents: ClassVar[bool] = True
    pair_kind: ClassVar[PairKind | None] = PairKind.positive

    def build(self, tables: Tables, split: str, limit: int | None) -> RetrievalExamples:
        corpus_table = tables.side("corpus", ["id", "text"])
        queries_table = tables.side("queries", ["id", "text"])
        # qrels without a score column list relevant pairs only: each has relevance 1
        qrels_table = tables.split(split, ["query_id", "doc_id"], record_as=f"qrels/{split}")

        corpus = corpus_texts(corpus_table, unique_ids(corpus_table))
        all_queries = dict(
            zip(unique_ids(queries_table), texts(queries_table.frame, "text", queries_table), strict=True)
        )

        qrels_frame = qrels_table.frame
        query_ids = texts(qrels_frame, "query_id", qrels_table, what="id")
        doc_ids = texts(qrels_frame, "doc_id", qrels_table, what="id")
        check_known(query_ids, all_queries, qrels_table, "query_id", "queries", queries_table)
        # against a set of the ids, not the corpus: no id -> row index is built for the whole run
        check_known(doc_ids, set(corpus), qrels_table, "doc_id", "documents", corpus_table)
        if "score" in qrels_frame.columns:
            relevance = integers(qrels_frame, "score", qrels_table).tolist()
        else:
            relevance = [1] * len(qrels_frame)
        qrels = _qrels(query_ids, doc_ids, relevance, qrels_table, tables)
        if limit is not None:
            kept = list(qrels)[:limit]  # the first N queries, in qrels order
            qrels = {query_id: qrels[query_id] for query_id in kept}
            tables.limit_last(qrels_frame[qrels_frame["query_id"].astype(str).isin(kept)])
        queries = {query_id: all_queries[query_id] for query_id in qrels}
        return RetrievalExamples(corpus=corpus, queries=queries, qrels=qrels)

    def item_count(self, examples: Any) -> int:
        return len(examples.qrels)

    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        return {"query": list(examples.queries.values()), "document": list(examples.corpus.values())}

    def timing_texts(self, examples: Any) -> tuple[list[str], list[str], str | None]:
        """Documents in batches (what indexing costs), queries one at a time (what serving costs)."""
        return list(examples.corpus.values()), list(examples.queries.values()), "document"

    def fit_texts(self, data: TaskData) -> tuple[list[str], str]:
        return list(data.examples.corpus.values()), "corpus"

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """The mean per-query nDCG on each resample."""
        column = next(c for c in per_item.columns if c.startswith("ndcg_at_"))
        return per_item[column].to_numpy(dtype=np.float64)[indices].mean(axis=1)

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """(anchor=query, positive=relevant document) of the train qrels."""
        anchors, positives = [], []
        for query_id, judged in examples.qrels.items():
            for doc_id, relevance in judged.items():
                if relevance > 0 and doc_id in examples.corpus and query_id in examples.queries:
                    anchors.append(examples.queries[query_id])
                    positives.append(examples.corpus[doc_id])
        return {"anchor": anchors, "positive": positives}

    def hold_out(self, examples: Any, split: Splitter) -> tuple[Any, Any]:
        """Queries held out, each part keeping the whole corpus."""
        query_ids = list(examples.qrels)
        keep, held = split(len(query_ids))

        def subset(indices: np.ndarray) -> RetrievalExamples:
            ids = [query_ids[i] for i in indices]
            return type(examples)(  # media families keep their own examples type
                corpus=examples.corpus,
                queries={q: examples.queries[q] for q in ids if q in examples.queries},
                qrels={q: examples.qrels[q] for q in ids},
            )

        return subset(keep), subset(held)


def _qrels(
    query_ids: list[str], doc_ids: list[str], relevance: list[int], loaded: Loaded, tables: Tables
) -> dict[str, dict[str, int]]:
    """query -> {doc: grade}; a (query, doc) pair judged twice with different grades is a DataError."""
    qrels: dict[str, dict[str, int]] = {}
    first_row: dict[tuple[str, str], int] = {}
    repeated = 0
    for row, (query_id, doc_id, score) in enumerate(zip(query_ids, doc_ids, relevance, strict=True)):
        judged = qrels.setdefault(query_id, {})
        if doc_id not in judged:
            judged[doc_id] = score
            first_row[(query_id, doc_id)] = row
            continue
        if judged[doc_id] != score:
            conflicts = _conflicting_pairs(query_ids, doc_ids, relevance)
            (path, earlier), (_, later) = loaded.at(first_row[(query_id, doc_id)]), loaded.at(row)
            raise DataError(
                f"{path}: rows {earlier} and {later} judge query {query_id!r} / document {doc_id!r} with "
                f"different scores ({judged[doc_id]} and {score}); {conflicts} (query, document) pair(s) "
                "have conflicting scores. Keep one row per pair"
            )
        repeated += 1
    if repeated:
        tables.warn(
            "duplicate_qrels",
            f"{loaded.source}: {repeated} repeated (query, document) row(s) with the same score; "
            "each pair counts once",
            repeated,
        )
    return qrels


def _conflicting_pairs(query_ids: list[str], doc_ids: list[str], relevance: list[int]) -> int:
    grades: dict[tuple[str, str], set[int]] = {}
    for pair_key in zip(query_ids, doc_ids, relevance, strict=True):
        grades.setdefault(pair_key[:2], set()).add(pair_key[2])
    return sum(len(values) > 1 for values in grades.values())
