"""Task-aware checks: labels, pair scores, retrieval qrels, and leakage between splits.

Each check returns its figures (for profile.json and metrics) and the findings they call for.
Texts are compared after normalisation (``duplicates.normalize_texts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.profiling.findings import Finding, Severity

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import ProfileConfig
    from embsel_mlflow.data.task_data import TableInfo


def label_check(
    table: str, labels: pd.Series, normalized: pd.Series | None, cfg: ProfileConfig, *, what: str = "text"
) -> tuple[dict[str, Any], list[Finding]]:
    """Class counts, imbalance, rare classes and conflicting labels (same text, different labels).

    ``normalized`` holds the normalised texts of the same rows (index-aligned), empty texts dropped;
    for an image or audio task (``what``), the content hashes of its files.
    """
    from embsel_mlflow.profiling.columns import as_strings

    values = as_strings(labels).str.strip()
    values = values[values != ""]
    counts = values.value_counts()
    column = f"{table}/label"
    figures: dict[str, Any] = {"class_counts": {str(k): int(v) for k, v in counts.items()}}
    findings: list[Finding] = []
    if counts.empty:
        return figures, findings
    ratio = float(counts.iloc[0] / counts.iloc[-1])
    rare = sorted(str(label) for label, count in counts.items() if count < cfg.rare_class_min)
    figures.update(classes=len(counts), imbalance_ratio=ratio, rare_classes=rare)
    if len(counts) > 1 and ratio >= cfg.imbalance_ratio_warn:
        findings.append(Finding(
            "label_imbalance", Severity.warn,
            f"labels in {table}: 1:{ratio:g} imbalance ({counts.index[0]!r} {counts.iloc[0]} vs "
            f"{counts.index[-1]!r} {counts.iloc[-1]}): accuracy means little; read macro F1",
            column, {"largest": int(counts.iloc[0]), "smallest": int(counts.iloc[-1]), "ratio": ratio},
        ))  # fmt: skip
    if rare:
        findings.append(Finding(
            "rare_classes", Severity.warn,
            f"labels in {table}: {len(rare)} class(es) have fewer than {cfg.rare_class_min} examples",
            column, {"classes": rare[:20], "min_examples": cfg.rare_class_min},
        ))  # fmt: skip
    if normalized is not None:
        joined = normalized.to_frame("text").join(values.rename("label"), how="inner")
        per_text = joined.groupby("text")["label"].nunique()
        conflicting = per_text[per_text > 1]
        figures["conflicting_texts"] = int(conflicting.size)
        if conflicting.size:
            findings.append(Finding(
                "conflicting_labels", Severity.warn,
                f"labels in {table}: {conflicting.size} {what}(s) appear with different labels",
                column, {"count": int(conflicting.size), "examples": conflicting.index[:5].tolist()},
            ))  # fmt: skip
    return figures, findings


def score_check(table: str, scores: pd.Series) -> dict[str, Any]:
    """The distribution of pair scores (STS gold similarity)."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(scores, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if values.size == 0:
        return {}
    histogram, edges = np.histogram(values, bins=10)
    return {
        "min": float(values.min()), "mean": float(values.mean()), "max": float(values.max()),
        "histogram": histogram.tolist(), "edges": edges.tolist(),
    }  # fmt: skip


def retrieval_check(
    split: str,
    qrels: pd.DataFrame,
    corpus: pd.DataFrame,
    queries: pd.DataFrame,
    documents: pd.Series,
    query_texts: pd.Series,
) -> tuple[dict[str, Any], list[Finding]]:
    """Judged documents and positives per query, missing ids, length ratio, query/document overlap.

    ``documents`` / ``query_texts`` are normalised texts indexed like ``corpus`` / ``queries``.
    """
    import pandas as pd

    from embsel_mlflow.profiling.columns import as_strings

    where = f"qrels/{split}"
    query_ids, doc_ids = as_strings(qrels["query_id"]), as_strings(qrels["doc_id"])
    relevance = pd.to_numeric(qrels["score"], errors="coerce").fillna(0) if "score" in qrels else None
    positive = relevance > 0 if relevance is not None else pd.Series(True, index=qrels.index)
    per_query = query_ids.value_counts()
    positives = query_ids[positive].value_counts().reindex(per_query.index, fill_value=0)
    known_docs = set(as_strings(corpus["id"])) if "id" in corpus else set()
    known_queries = set(as_strings(queries["id"])) if "id" in queries else set()
    missing_docs = int((~doc_ids.isin(known_docs)).sum())
    missing_queries = int((~query_ids.drop_duplicates().isin(known_queries)).sum())
    judged = queries[as_strings(queries["id"]).isin(set(query_ids))] if "id" in queries else queries
    judged_texts = query_texts.loc[judged.index]
    overlap = int(judged_texts.isin(set(documents)).sum())
    query_words = judged_texts.str.count(r"\S+").mean()
    doc_words = documents.str.count(r"\S+").mean()
    figures = {
        "queries": int(per_query.size),
        "judged_per_query_mean": float(per_query.mean()),
        "positives_per_query_mean": float(positives.mean()),
        "queries_without_positive": int((positives == 0).sum()),
        "qrels_missing_documents": missing_docs,
        "qrels_missing_queries": missing_queries,
        "query_document_length_ratio": float(query_words / doc_words) if doc_words else 0.0,
        "queries_equal_to_a_document": overlap,
    }
    findings = []
    if figures["queries_without_positive"]:
        findings.append(Finding("queries_without_positive", Severity.warn,
            f"{where}: {figures['queries_without_positive']} query(ies) have no relevant document",
            where, {"count": figures["queries_without_positive"]}))  # fmt: skip
    if missing_docs or missing_queries:
        findings.append(Finding("qrels_missing_ids", Severity.error,
            f"{where}: {missing_docs} judgement(s) point at documents and {missing_queries} query id(s) "
            "missing from the corpus/queries tables", where,
            {"missing_documents": missing_docs, "missing_queries": missing_queries}))  # fmt: skip
    if overlap:
        findings.append(Finding("query_document_overlap", Severity.warn,
            f"{where}: {overlap} query text(s) also appear verbatim as documents (leakage)",
            where, {"count": overlap}))  # fmt: skip
    return figures, findings


def split_leakage(
    eval_split: str, keys_by_split: dict[str, pd.Series], what: str
) -> tuple[dict[str, int], list[Finding]]:
    """Rows of ``eval_split`` whose normalised key (a text, or a text pair) also occurs in another split."""
    figures: dict[str, int] = {}
    findings: list[Finding] = []
    evaluated = keys_by_split.get(eval_split)
    if evaluated is None:
        return figures, findings
    for other, keys in keys_by_split.items():
        if other == eval_split:
            continue
        shared = int(evaluated.isin(set(keys)).sum())
        figures[f"{eval_split}_in_{other}"] = shared
        if shared:
            findings.append(Finding(
                "split_leakage", Severity.warn,
                f"{shared} {eval_split} row(s) have {_NOUNS.get(what, f'a {what}')} also in {other} "
                "(leakage: scores are optimistic)",
                f"{eval_split}/{what}", {"count": shared, "other_split": other},
            ))  # fmt: skip
    return figures, findings


def task_checks(
    tables: list[TableInfo],
    normalized: dict[tuple[str, str], pd.Series],
    task: str | None,
    eval_split: str,
    cfg: ProfileConfig,
) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    """Every task-aware check that the tables allow; ``normalized`` maps (table, column) to its texts.

    ``task``: the dataset's task family (None: a raw table); a family whose splits are qrels
    (retrieval) gets the query/document checks and its splits are keyed by query id.
    """
    from embsel_mlflow.families import get_family

    checks: dict[str, dict[str, Any]] = {}
    findings: list[Finding] = []
    retrieval = task is not None and get_family(task).qrels_splits
    media = next((role for role in MEDIA_KEYS if any(column == role for _, column in normalized)), None)
    for table in tables:
        columns = table.frame.columns
        if "label" in columns:
            checks[f"labels/{table.role}"], found = label_check(
                table.role, table.frame["label"], _row_keys(normalized, table.role), cfg, what=media or "text"
            )
            findings += found
        if "score" in columns and not retrieval:
            checks[f"scores/{table.role}"] = score_check(table.role, table.frame["score"])
    frames = {table.role: table.frame for table in tables}
    if retrieval and "corpus" in frames and "queries" in frames:
        documents = normalized.get(("corpus", "document"), normalized.get(("corpus", "text")))
        queries = normalized.get(("queries", "text"))
        usable = documents is not None and queries is not None
        for role, frame in frames.items():
            if role.startswith("qrels/") and usable and {"query_id", "doc_id"} <= set(frame.columns):
                split = role.removeprefix("qrels/")
                checks[f"retrieval/{split}"], found = retrieval_check(
                    split, frame, frames["corpus"], frames["queries"], documents, queries
                )
                findings += found
    keys, what = _split_keys(tables, normalized, retrieval)
    evaluated = f"qrels/{eval_split}" if retrieval else eval_split
    if len(keys) > 1:
        checks["leakage"], found = split_leakage(evaluated, keys, what)
        findings += found
    return checks, findings


_NOT_SPLITS = ("corpus", "queries", "table")
_NOUNS = {"image": "an image", "audio": "an audio clip"}
# Embedded media columns whose content hashes are in ``normalized`` (only when the task embeds them)
MEDIA_KEYS = ("image", "audio")


def _row_keys(normalized: dict[tuple[str, str], pd.Series], table: str) -> pd.Series | None:
    """What identifies each row of ``table``: the content hash of the image or clip an image/audio
    task embeds, else its normalised text, or its (s1, s2) pair."""
    for role in MEDIA_KEYS:
        if (table, role) in normalized:
            return normalized[(table, role)]
    if (table, "text") in normalized:
        return normalized[(table, "text")]
    if (table, "s1") in normalized and (table, "s2") in normalized:
        pairs = (
            normalized[(table, "s1")].to_frame("s1").join(normalized[(table, "s2")].rename("s2"), how="inner")
        )
        return pairs["s1"] + "\t" + pairs["s2"]
    return None


def _split_keys(
    tables: list[TableInfo], normalized: dict[tuple[str, str], pd.Series], retrieval: bool
) -> tuple[dict[str, pd.Series], str]:
    """What identifies an example in each split: query ids (retrieval), else the normalised text (pair)."""
    from embsel_mlflow.profiling.columns import as_strings

    if retrieval:
        return {
            t.role: as_strings(t.frame["query_id"]).drop_duplicates()
            for t in tables
            if t.role.startswith("qrels/") and "query_id" in t.frame.columns
        }, "query"
    keys = {t.role: _row_keys(normalized, t.role) for t in tables if t.role not in _NOT_SPLITS}
    media = next((role for role in MEDIA_KEYS if any(column == role for _, column in normalized)), None)
    return {role: key for role, key in keys.items() if key is not None}, media or "text"
