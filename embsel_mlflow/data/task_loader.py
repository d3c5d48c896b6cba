"""Build a task's :class:`TaskData` from its configured tables, validating every value used.

Rows in error messages are counted from 1, header excluded. Column names in messages are the
file's own (before renaming to roles), so they can be searched for in the file. Under
``data.limit`` only the kept evaluation rows are validated (quick runs stay quick).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import DataConfig, TableConfig, TaskType
from embsel_mlflow.data.loader import FILES_ATTR, load_table
from embsel_mlflow.data.task_data import (
    ClassificationExamples,
    ClusteringExamples,
    DataWarning,
    Examples,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    TableInfo,
    TaskData,
)
from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}
# A visible character: anything but whitespace, control and invisible format characters
# (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi marks, Mongolian vowel separator).
_VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


def load_task_data(cfg: DataConfig, *, split: str | None = None) -> TaskData:
    """Load the dataset described by ``cfg`` for its task, evaluating on ``split`` (default: eval_split).

    ``TaskData.tables`` records every table as loaded (roles renamed); under ``cfg.limit`` the
    evaluation table holds only the rows kept (for retrieval: the qrels of the first N queries).
    """
    split = split or cfg.eval_split
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"data.limit: must be a positive number of examples or null, got {cfg.limit}")
    task = TaskType(cfg.task)
    tables = _Tables(cfg)
    examples = _BUILDERS[task](tables, split, cfg.limit)
    return TaskData(
        name=cfg.name,
        task=task,
        split=split,
        examples=examples,
        tables=tables.loaded,
        warnings=tables.warnings,
    )


@dataclasses.dataclass
class _Loaded:
    """A loaded table with what error messages need to point back at it."""

    frame: pd.DataFrame
    source: str
    columns: dict[str, str]  # role -> column name in the file

    def column(self, role: str) -> str:
        return self.columns.get(role, role)

    def at(self, row: int) -> tuple[str, int]:
        """(file, 1-based row in that file) of the frame's 0-based ``row`` (tables may span files)."""
        files = self.frame.attrs.get(FILES_ATTR) or [(0, self.source)]
        start, path = max((entry for entry in files if entry[0] <= row), key=lambda entry: entry[0])
        return path, row - start + 1


class _Tables:
    """Loads the tables of one DataConfig and records their provenance."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.loaded: list[TableInfo] = []
        self.warnings: list[DataWarning] = []

    def split(self, name: str, required: Sequence[str], *, record_as: str | None = None) -> _Loaded:
        table = self.cfg.splits.get(name)
        if table is None:
            raise ConfigError(
                f"data.splits.{name}: split {name!r} is not configured for dataset {self.cfg.name!r}; "
                f"configured splits: {sorted(self.cfg.splits)}"
            )
        if table.hub and not table.split:
            table = dataclasses.replace(table, split=name)  # a hub split defaults to the split's name
        return self.read(table, f"data.splits.{name}", required, record_as or name)

    def side(self, name: str, required: Sequence[str]) -> _Loaded:
        """The corpus or queries table of a retrieval dataset."""
        table = getattr(self.cfg, name)
        if table is None:
            raise ConfigError(f"data.{name}: retrieval needs a {name} table; set data.{name}.path")
        return self.read(table, f"data.{name}", required, name)

    def read(self, table: TableConfig, where: str, required: Sequence[str], role: str) -> _Loaded:
        frame, source = load_table(
            table, root=self.cfg.root, defaults=self.cfg.reader, required=required, where=where
        )
        self.loaded.append(TableInfo(role=role, source=source, frame=frame))
        return _Loaded(frame=frame, source=source, columns=dict(table.columns))

    def limit_last(self, frame: pd.DataFrame) -> None:
        """Record the evaluated rows only for the last table (the eval split under ``data.limit``)."""
        self.loaded[-1].frame = frame

    def warn(self, code: str, message: str, count: int) -> None:
        self.warnings.append(DataWarning(code=code, message=message, count=count))


def _head(tables: _Tables, loaded: _Loaded, limit: int | None) -> pd.DataFrame:
    frame = loaded.frame if limit is None else loaded.frame.head(limit)
    frame.attrs = loaded.frame.attrs  # keep the row -> file map for error messages
    tables.limit_last(frame)
    return frame


def _sts(tables: _Tables, split: str, limit: int | None) -> STSExamples:
    loaded = tables.split(split, ["s1", "s2", "score"])
    frame = _head(tables, loaded, limit)
    return STSExamples(
        s1=texts(frame, "s1", loaded),
        s2=texts(frame, "s2", loaded),
        scores=numbers(frame, "score", loaded),
    )


def _pair_classification(tables: _Tables, split: str, limit: int | None) -> PairClassificationExamples:
    loaded = tables.split(split, ["s1", "s2", "label"])
    frame = _head(tables, loaded, limit)
    return PairClassificationExamples(
        s1=texts(frame, "s1", loaded),
        s2=texts(frame, "s2", loaded),
        labels=binary_labels(frame, "label", loaded),
    )


def _classification(tables: _Tables, split: str, limit: int | None) -> ClassificationExamples:
    train_split = tables.cfg.train_split
    train = tables.split(train_split, ["text", "label"])
    test = tables.split(split, ["text", "label"])
    frame = _head(tables, test, limit)
    return ClassificationExamples(
        train_texts=texts(train.frame, "text", train),
        train_labels=texts(train.frame, "label", train, what="label"),
        test_texts=texts(frame, "text", test),
        test_labels=texts(frame, "label", test, what="label"),
    )


def _clustering(tables: _Tables, split: str, limit: int | None) -> ClusteringExamples:
    loaded = tables.split(split, ["text", "label"])
    frame = _head(tables, loaded, limit)
    return ClusteringExamples(
        texts=texts(frame, "text", loaded), labels=texts(frame, "label", loaded, what="label")
    )


def _retrieval(tables: _Tables, split: str, limit: int | None) -> RetrievalExamples:
    corpus_table = tables.side("corpus", ["id", "text"])
    queries_table = tables.side("queries", ["id", "text"])
    qrels_table = tables.split(split, ["query_id", "doc_id", "score"], record_as=f"qrels/{split}")

    corpus = dict(zip(unique_ids(corpus_table), _documents(corpus_table), strict=True))
    all_queries = dict(
        zip(unique_ids(queries_table), texts(queries_table.frame, "text", queries_table), strict=True)
    )

    qrels_frame = qrels_table.frame
    query_ids = texts(qrels_frame, "query_id", qrels_table, what="id")
    doc_ids = texts(qrels_frame, "doc_id", qrels_table, what="id")
    _check_known(query_ids, all_queries, qrels_table, "query_id", "queries", queries_table)
    _check_known(doc_ids, corpus, qrels_table, "doc_id", "documents", corpus_table)
    relevance = integers(qrels_frame, "score", qrels_table)
    qrels = _qrels(query_ids, doc_ids, relevance.tolist(), qrels_table, tables)
    if limit is not None:
        kept = list(qrels)[:limit]  # the first N queries, in qrels order
        qrels = {query_id: qrels[query_id] for query_id in kept}
        tables.limit_last(qrels_frame[qrels_frame["query_id"].astype(str).isin(kept)])
    queries = {query_id: all_queries[query_id] for query_id in qrels}
    return RetrievalExamples(corpus=corpus, queries=queries, qrels=qrels)


def _qrels(
    query_ids: list[str], doc_ids: list[str], relevance: list[int], loaded: _Loaded, tables: _Tables
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


_BUILDERS: dict[TaskType, Callable[[_Tables, str, int | None], Examples]] = {
    TaskType.sts: _sts,
    TaskType.pair_classification: _pair_classification,
    TaskType.classification: _classification,
    TaskType.clustering: _clustering,
    TaskType.retrieval: _retrieval,
}


# --- value validation -------------------------------------------------------------------------


def texts(frame: pd.DataFrame, role: str, loaded: _Loaded, *, what: str = "text") -> list[str]:
    """The role's values as strings with a visible character; anything else is a DataError.

    Empty, missing, blank and invisible-only values (zero-width spaces, a BOM) are refused: a
    model would embed them as noise.
    """
    values = _strings(frame[role])
    bad = [i for i, v in enumerate(values) if _VISIBLE.search(v) is None]
    if bad:
        path, row = loaded.at(bad[0])
        raise DataError(
            f"{path}: column {loaded.column(role)!r} has {len(bad)} empty or missing {what} value(s), "
            f"first at row {row} (blank or only invisible characters count as empty); fill or remove "
            "those rows"
        )
    return values


def numbers(frame: pd.DataFrame, role: str, loaded: _Loaded) -> np.ndarray:
    """The role's values as float64; a value that is not a number is a DataError."""
    import numpy as np
    import pandas as pd

    raw = frame[role]
    parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size:
        row = int(bad[0])
        path, file_row = loaded.at(row)
        raise DataError(
            f"{path}: column {loaded.column(role)!r} row {file_row} has {raw.iloc[row]!r}, "
            f"not a number ({bad.size} such row(s)); fix the value or map {role} to the right column"
        )
    return parsed


def integers(frame: pd.DataFrame, role: str, loaded: _Loaded) -> np.ndarray:
    """The role's values as int64; a non-integer value is a DataError."""
    import numpy as np

    values = numbers(frame, role, loaded)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        row = int(bad[0])
        path, file_row = loaded.at(row)
        raise DataError(
            f"{path}: column {loaded.column(role)!r} row {file_row} has {frame[role].iloc[row]!r}, "
            f"not an integer ({bad.size} such row(s))"
        )
    return values.astype(np.int64)


def binary_labels(frame: pd.DataFrame, role: str, loaded: _Loaded) -> np.ndarray:
    """0/1 labels from ints, booleans or their text forms ("1", "true"); anything else is a DataError."""
    import numpy as np

    labels = np.empty(len(frame), dtype=np.int64)
    for row, (value, text) in enumerate(zip(frame[role].tolist(), _strings(frame[role]), strict=True)):
        text = text.strip().lower()
        if text in _TRUE:
            labels[row] = 1
        elif text in _FALSE:
            labels[row] = 0
        else:
            path, file_row = loaded.at(row)
            raise DataError(
                f"{path}: column {loaded.column(role)!r} row {file_row} has {value!r}; "
                f"pair labels must be 0/1 or true/false (1 = positive pair)"
            )
    return labels


def unique_ids(loaded: _Loaded) -> list[str]:
    """The table's ``id`` values as strings; missing or duplicate ids are a DataError."""
    ids = texts(loaded.frame, "id", loaded, what="id")
    duplicates = [i for i, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise DataError(
            f"{loaded.source}: column {loaded.column('id')!r} has {len(duplicates)} duplicate id(s), "
            f"e.g. {duplicates[0]!r}; ids must be unique"
        )
    return ids


def _documents(corpus: _Loaded) -> list[str]:
    """Corpus texts, "title text" when a title is present (the MTEB/BEIR convention)."""
    frame = corpus.frame
    if "title" not in frame.columns:
        return texts(frame, "text", corpus)
    titles, bodies = _strings(frame["title"]), _strings(frame["text"])
    documents = [(f"{title} {body}").strip() for title, body in zip(titles, bodies, strict=True)]
    bad = [i for i, document in enumerate(documents) if _VISIBLE.search(document) is None]
    if bad:
        path, row = corpus.at(bad[0])
        raise DataError(
            f"{path}: columns {corpus.column('title')!r} and {corpus.column('text')!r} are both "
            f"empty in {len(bad)} document(s), first at row {row}; fill or remove those rows"
        )
    return documents


def _check_known(
    ids: list[str], known: dict[str, str], qrels: _Loaded, role: str, kind: str, table: _Loaded
) -> None:
    unknown = list(dict.fromkeys(i for i in ids if i not in known))
    if unknown:
        raise DataError(
            f"{qrels.source}: column {qrels.column(role)!r} has {len(unknown)} id(s) not found in the "
            f"{kind} table {table.source}, e.g. {unknown[0]!r}; check the qrels split and the id columns"
        )


def _strings(column: pd.Series) -> list[str]:
    """Values as ``str``, missing cells (None, NaN, NA) as "" (ints from json/parquet become "4983")."""
    missing = column.isna().tolist()
    return ["" if gone else str(value) for value, gone in zip(column.tolist(), missing, strict=True)]
