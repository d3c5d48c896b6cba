"""A retrieval window of judged queries: re-scored against the reference's corpus.

A window file for a retrieval reference may list, per row, a query (``text``) and a document it
judged relevant (``doc_id``: a click, an annotation), with an optional ``query_id`` (else the
query text identifies the query) and an integer ``score`` (relevance; default 1). Such a window is
written out as BEIR queries and qrels, keyed by the window's digest, and evaluated as the reference
data with those queries and qrels: through the task loader and the retrieval evaluator that
``evaluate`` uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config import DataConfig, TableConfig, TaskType
from embsel_mlflow.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

JUDGED_ROLES = ("text", "doc_id")  # a query and one document judged relevant to it, per row


def is_judged_queries(frame: pd.DataFrame, reference: DataConfig) -> bool:
    """A window of judged queries: a retrieval reference, and a query text and a doc_id per row."""
    return str(reference.task) == TaskType.retrieval and all(role in frame.columns for role in JUDGED_ROLES)


def _query_ids(frame: pd.DataFrame) -> list[str]:
    """Each row's query id: its ``query_id``, else a digest of its text (one id per distinct query)."""
    if "query_id" in frame.columns:
        return frame["query_id"].astype(str).tolist()
    return ["q" + hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:16] for text in frame["text"]]


def judged_queries_data(
    frame: pd.DataFrame, reference: DataConfig, name: str, directory: Path, where: str
) -> DataConfig:
    """The reference data with this window's judged queries and qrels (rows without a doc_id are
    queries nobody judged: left out of the score, still in the drift tests).

    The queries and qrels are written to ``directory`` (named by the window's digest), so the run's
    data parameters name files that stay there to inspect.
    """
    import pandas as pd

    judged = _judged_rows(frame)
    if judged.empty:
        raise DataError(f"{where}: no row has both a query text and a doc_id; give judged queries")
    ids = _query_ids(judged)
    queries = pd.DataFrame({"_id": ids, "text": judged["text"].astype(str).tolist()}).drop_duplicates()
    conflicting = queries[queries["_id"].duplicated()]
    if not conflicting.empty:
        raise DataError(
            f"{where}: query_id {conflicting['_id'].iloc[0]!r} has more than one text; "
            "give each query one query_id"
        )
    scores = judged["score"].tolist() if "score" in judged.columns else [1] * len(judged)
    qrels = pd.DataFrame(
        {"query-id": ids, "corpus-id": judged["doc_id"].astype(str).tolist(), "score": scores}
    )
    directory.mkdir(parents=True, exist_ok=True)
    queries_path, qrels_path = directory / "queries.jsonl", directory / "qrels.tsv"
    queries.to_json(queries_path, orient="records", lines=True, force_ascii=False)
    qrels.to_csv(qrels_path, sep="\t", index=False)
    return _with_queries(reference, name, queries_path, qrels_path)


def _judged_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a query and a judged document (a blank doc_id: a query nobody judged)."""
    filled = frame[list(JUDGED_ROLES)].notna().all(axis=1)
    for role in JUDGED_ROLES:
        filled &= frame[role].astype(str).str.strip() != ""
    return frame[filled]


def _corpus(reference: DataConfig) -> TableConfig:
    """The reference's corpus table, its reader options pinned on it (they belong to its file)."""
    from embsel_mlflow.data.loader import with_reader_defaults

    if reference.corpus is None:
        raise DataError(
            f"data={reference.name}: a retrieval reference needs a corpus to score judged queries"
        )
    return with_reader_defaults(reference.corpus, reference.reader)


def _with_queries(reference: DataConfig, name: str, queries: Path, qrels: Path) -> DataConfig:
    return dataclasses.replace(
        reference,
        name=f"{reference.name}@{name}",
        reader=TableConfig(),
        corpus=_corpus(reference),
        queries=TableConfig(path=str(queries), columns={"id": "_id"}),
        splits={
            reference.eval_split: TableConfig(
                path=str(qrels), columns={"query_id": "query-id", "doc_id": "corpus-id"}
            )
        },
        limit=None,
    )


def check_judged_documents(windows: list[tuple[str, pd.DataFrame]], reference: DataConfig) -> None:
    """Every judged ``doc_id`` is a document of the reference corpus (read once for all windows).

    Checked before any model loads, and named by the window file's own column, not the qrels it becomes.
    """
    from embsel_mlflow.data.loader import load_table

    if not windows:
        return
    corpus, source = load_table(_corpus(reference), root=reference.root, required=["id"], where="data.corpus")
    known = set(corpus["id"].astype(str))
    for where, frame in windows:
        unknown = sorted(set(_judged_rows(frame)["doc_id"].astype(str)) - known)
        if unknown:
            raise DataError(
                f"{where}: {len(unknown)} doc_id value(s) are not documents of the reference corpus "
                f"{source}, e.g. {unknown[0]!r}; judge documents of data={reference.name}'s corpus, or map "
                "the right column with +current.table.columns.doc_id=<column>"
            )
