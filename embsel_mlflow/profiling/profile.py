"""Profile tables: column types, text or media statistics, token lengths per candidate, task checks,
findings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import ProfileConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.profiling.column_profile import ColumnProfile
from embsel_mlflow.profiling.columns import MEDIA_MODALITY as _MEDIA
from embsel_mlflow.profiling.columns import ColumnKind, ColumnType, as_strings, detect_column
from embsel_mlflow.profiling.findings import Finding, Severity, severity_counts
from embsel_mlflow.profiling.rules import column_findings, token_findings
from embsel_mlflow.profiling.tasks import task_checks
from embsel_mlflow.profiling.text_stats import text_stats
from embsel_mlflow.text.tokens import CandidateTokenizer, token_stats

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from embsel_mlflow.config import DataConfig, MediaConfig, ModelConfig, TableConfig
    from embsel_mlflow.data.task_data import TableInfo

# A retrieval corpus is embedded as "title text" (the BEIR convention the task loader follows).
DOCUMENT = "document"
# The figures logged as MLflow metrics, per embedded column (and candidate): the headline a runs
# table compares. Every other figure, and every metadata column, is in profile.json and the report.
HEADLINE_STATS = frozenset(
    {"empty_rate", "duplicate_rate", "near_duplicate_rate"}  # texts
    | {"bad_media_rate", "readable", "width_median", "height_median"}  # media
    | {"duration_min", "duration_mean", "duration_max"}
    | {"silent_rate", "clipped_rate"}
)
# ... and per candidate: how much of a column it cuts or cannot read (a word counter: the length).
HEADLINE_TOKEN_STATS = frozenset({"truncation_rate", "unknown_token_rate", "words_p95"})


@dataclass
class DataProfile:
    name: str
    task: str | None
    tables: list[TableInfo] = field(repr=False)
    columns: list[ColumnProfile]
    checks: dict[str, Any]  # task-aware figures: labels/<table>, scores/<table>, retrieval/<split>, leakage
    findings: list[Finding]
    candidates: dict[str, str]  # name -> how lengths are counted
    seconds: float = 0.0

    def column(self, key: str) -> ColumnProfile:
        return next(c for c in self.columns if c.key == key)

    def codes(self, *severities: Severity) -> list[str]:
        wanted = set(severities) or set(Severity)
        return sorted(f.code for f in self.findings if f.severity in wanted)

    def metrics(self) -> dict[str, float]:
        """The headline: ``profile/<table>/rows``, ``profile/<table>/<column>/<stat>`` and
        ``.../<stat>/<candidate>`` of the embedded columns (``HEADLINE_*`` only), the task
        checks' figures and the finding counts. Tens of metrics, not hundreds: the rest is in
        ``to_dict`` (profile.json) and the report."""
        metrics: dict[str, float] = {
            f"profile/{table.role}/rows": float(len(table.frame)) for table in self.tables
        }
        for column in self.columns:
            if column.metadata:
                continue
            prefix = f"profile/{column.key}"
            stats = {
                **(column.text.metrics() if column.text else {}),
                **(column.media.metrics() if column.media else {}),
            }
            metrics.update({f"{prefix}/{k}": v for k, v in stats.items() if k in HEADLINE_STATS})
            for name, tokens in column.tokens.items():
                metrics.update(
                    {
                        f"{prefix}/{k}/{name}": v
                        for k, v in tokens.metrics().items()
                        if k in HEADLINE_TOKEN_STATS
                    }
                )
        for check, figures in self.checks.items():
            for key, value in figures.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"profile/{check}/{key}"] = float(value)
        metrics.update({f"profile/findings/{k}": float(v) for k, v in severity_counts(self.findings).items()})
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "tables": {t.role: {"source": t.source, "rows": len(t.frame)} for t in self.tables},
            "candidates": self.candidates,
            "columns": [c.to_dict() for c in self.columns],
            "checks": self.checks,
            "findings": [f.to_dict() for f in self.findings],
            "finding_counts": severity_counts(self.findings),
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """What a person reads in ten seconds: tables, column kinds, then the findings, worst first."""
        counts = severity_counts(self.findings)
        lines = [f"profile of {self.name} ({self.task or 'table'}), {self.seconds:.1f}s"]
        for table in self.tables:
            kinds = ", ".join(
                f"{c.column}:{'metadata' if c.metadata else c.type.kind.value}"
                for c in self.columns
                if c.table == table.role
            )
            lines.append(f"  {table.role:<14} {len(table.frame):>8} rows  {kinds}")
        lines.append(f"findings: {counts['error']} error, {counts['warn']} warn, {counts['info']} info")
        order = {Severity.error: 0, Severity.warn: 1, Severity.info: 2}
        for finding in sorted(self.findings, key=lambda f: order[f.severity]):
            lines.append(f"  [{finding.severity.value:<5}] {finding.message}")
        return "\n".join(lines)


def profile_tables(
    tables: list[TableInfo],
    *,
    name: str,
    task: str | None = None,
    eval_split: str = "test",
    candidates: Sequence[CandidateTokenizer] = (),
    cfg: ProfileConfig | None = None,
    root: str | Path = ".",
    limits: MediaConfig | None = None,
) -> DataProfile:
    """The profile of ``tables`` (as the data layer loaded them) for ``candidates``.

    ``task`` (a family name; None: a raw table) says which columns are embedded as text and which
    modalities the data is for; ``limits`` are the dataset's ``data.media`` limits (image and
    audio columns: files over them are counted as over the limit).
    """
    cfg = cfg or ProfileConfig()
    started = time.perf_counter()
    columns: list[ColumnProfile] = []
    normalized: dict[tuple[str, str], pd.Series] = {}
    findings: list[Finding] = []
    roles, media_roles, modalities = _task_roles(task)
    # a task that embeds images or sound: its other text columns (captions, transcripts) are
    # described, but their duplicates are not a finding (they are not what is embedded)
    text_findings_for = roles if modalities is not None and modalities - {"text"} else None
    # which text columns are texts: a task's embedded columns; in a raw table with a column named
    # for a text role (text, s1, query, ...), that column. Any other text column is metadata
    # (STS-B's source1): described, but neither its findings nor its tokens drown the real ones.
    named = task is not None or any(str(c) in roles for table in tables for c in table.frame.columns)
    for table in tables:
        for column in _with_document(table):
            profile = _profile_column(
                table.role, column, _series(table, column), cfg, root,
                text_roles=roles, media_roles=media_roles, limits=limits,
            )  # fmt: skip
            columns.append(profile)
            profile.metadata = named and profile.type.kind == ColumnKind.text and column not in roles
            text_findings = text_findings_for is None or column in text_findings_for
            findings += column_findings(profile, cfg, modalities=modalities, text_findings=text_findings)
            if profile.normalized is not None and not profile.metadata:  # metadata: no leakage check
                normalized[(table.role, column)] = profile.normalized
    _add_token_stats(columns, candidates, cfg)
    for column_profile in columns:
        findings += token_findings(column_profile, cfg)
    checks, task_findings = task_checks(tables, normalized, task, eval_split, cfg)
    findings += task_findings
    findings += [
        Finding("word_counts", Severity.info, f"{c.name}: {c.note}", evidence={"candidate": c.name})
        for c in candidates
        if c.tokenizer is None
    ]
    return DataProfile(
        name=name,
        task=str(task) if task else None,
        tables=tables,
        columns=columns,
        checks=checks,
        findings=findings,
        candidates={c.name: c.note for c in candidates},
        seconds=time.perf_counter() - started,
    )


def _with_document(table: TableInfo) -> list[str]:
    names = [str(c) for c in table.frame.columns]
    if table.role == "corpus" and {"title", "text"} <= set(names):
        names.append(DOCUMENT)
    return names


def _series(table: TableInfo, column: str) -> pd.Series:
    frame = table.frame
    if column == DOCUMENT and DOCUMENT not in frame.columns:
        # what the task loader embeds: "title text", stripped
        return (as_strings(frame["title"]) + " " + as_strings(frame["text"])).str.strip()
    return frame[column]


def _task_roles(task: str | None) -> tuple[frozenset[str], frozenset[str], frozenset[str] | None]:
    """(columns the task embeds as text, columns it embeds as media, its modalities; None: a raw table).

    A family's ``embedded_columns`` split into its media roles (``image``, ``audio``) and the rest;
    for a raw table, the text roles of every registered family, since any of them may be the task.
    """
    from embsel_mlflow.families import FAMILIES, get_family

    families = [get_family(task)] if task else list(FAMILIES.values())
    columns = {column for family in families for column in family.embedded_columns}
    media = frozenset(columns & set(_MEDIA.values())) if task else frozenset()
    modalities = frozenset(get_family(task).modalities) if task else None
    return frozenset(columns - set(_MEDIA.values())) | {DOCUMENT}, media, modalities


def _profile_column(
    table: str,
    column: str,
    series: pd.Series,
    cfg: ProfileConfig,
    root: str | Path,
    *,
    text_roles: frozenset[str],
    media_roles: frozenset[str] = frozenset(),
    limits: MediaConfig | None = None,
) -> ColumnProfile:
    from embsel_mlflow.profiling.media_stats import media_stats

    kind = detect_column(column, series, root=root)
    if column in text_roles and kind.kind not in (ColumnKind.empty, ColumnKind.vectors, *_MEDIA):
        kind = ColumnType(ColumnKind.text, kind.confidence if kind.kind == ColumnKind.text else 1.0,
                          f"a text role the model embeds; {kind.evidence}", kind.value_types)  # fmt: skip
    profile = ColumnProfile(table, column, kind)
    if kind.kind == ColumnKind.text:
        profile.text, profile.filled, profile.normalized = text_stats(series, cfg)
    elif kind.kind in _MEDIA:  # never text statistics on paths or bytes
        # an embedded media column: its content hashes key the task checks, as texts do for text
        profile.media, profile.normalized = media_stats(
            series, _MEDIA[kind.kind], root=root, cfg=cfg, limits=limits, keys=column in media_roles
        )
    return profile


def _token_columns(columns: list[ColumnProfile]) -> list[ColumnProfile]:
    """Text columns as models see them: a corpus with a title is embedded as its ``document`` column."""
    documents = {c.table for c in columns if c.column == DOCUMENT and c.text is not None}
    embedded = [c for c in columns if c.text is not None and not c.metadata]
    return [c for c in embedded if not (c.table in documents and c.column in ("title", "text"))]


def _add_token_stats(
    columns: list[ColumnProfile], candidates: Sequence[CandidateTokenizer], cfg: ProfileConfig
) -> None:
    from tqdm.auto import tqdm

    targets = _token_columns(columns)
    if not candidates or not targets:
        return
    # text columns (the only targets) always have ``filled``: text_stats sets both together
    texts = {c.key: c.filled.tolist() for c in targets if c.filled is not None}
    total = sum(len(t) for t in texts.values()) * sum(c.tokenizer is not None for c in candidates)
    with tqdm(
        total=total, desc="tokenizing", unit="text", disable=not cfg.show_progress or total < 10_000
    ) as bar:
        for column in targets:
            for candidate in candidates:
                column.tokens[candidate.name] = token_stats(
                    candidate, texts[column.key], batch_size=cfg.tokenize_batch_size, progress=bar
                )


def profile_job_data(
    data: DataConfig | None,
    *,
    table: TableConfig | None = None,
    table_root: str | Path = ".",
    candidates: Mapping[str, ModelConfig] | None = None,
    cfg: ProfileConfig | None = None,
) -> DataProfile:
    """The library call behind ``embsel profile``: a dataset config, or one raw table, for candidates."""
    from embsel_mlflow.profiling.sources import dataset_tables, raw_table
    from embsel_mlflow.text.tokens import load_candidate_tokenizer

    cfg = cfg or ProfileConfig()
    limits: MediaConfig | None = None  # a raw table: the default data.media limits
    wanted_table = table if table is not None and bool(table.path or table.hub) else None
    if wanted_table is not None and data is not None:
        raise ConfigError(f"profile either data={data.name} or table.path={wanted_table.path}, not both")
    if wanted_table is not None:
        tables, name, task, eval_split, root = (
            raw_table(wanted_table, table_root),
            _table_name(wanted_table),
            None,
            "",
            table_root,
        )
    elif data is not None:
        tables, name, task = dataset_tables(data), data.name, str(data.task)
        eval_split, root, limits = data.eval_split, data.root, data.media
    else:
        raise ConfigError(
            "nothing to profile: choose a dataset (data=banking77) or a table (table.path=x.csv)"
        )
    tokenizers = [load_candidate_tokenizer(option, model) for option, model in (candidates or {}).items()]
    return profile_tables(
        tables,
        name=name,
        task=task,
        eval_split=eval_split,
        candidates=tokenizers,
        cfg=cfg,
        root=root,
        limits=limits,
    )


def _table_name(table: TableConfig) -> str:
    source = table.hub or str(table.path)
    return Path(source).stem if not table.hub else source
