"""Which column and token figures call for a finding, and how it is said."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.profiling.columns import ColumnKind
from embsel_mlflow.profiling.findings import Finding, Severity, percent

if TYPE_CHECKING:
    from embsel_mlflow.config import ProfileConfig
    from embsel_mlflow.profiling.column_profile import ColumnProfile

_MEDIA_WORDS = {ColumnKind.image_path: "image", ColumnKind.audio_path: "audio"}


def column_findings(column: ColumnProfile, cfg: ProfileConfig) -> list[Finding]:
    key, kind = column.key, column.type.kind
    findings = []
    if len(column.type.value_types) > 1:
        types = ", ".join(f"{name} {count}" for name, count in column.type.value_types.items())
        findings.append(Finding("mixed_types", Severity.warn,
            f"column `{key}` mixes value types ({types}): values are compared as text",
            key, {"value_types": column.type.value_types}))  # fmt: skip
    if kind == ColumnKind.empty:
        findings.append(Finding("empty_column", Severity.warn,
            f"column `{key}` is empty: {column.type.evidence}", key, {}))  # fmt: skip
    if kind in _MEDIA_WORDS:
        what = _MEDIA_WORDS[kind]
        findings.append(Finding("modality_mismatch", Severity.error,
            f"column `{key}` holds {what} paths: a text embedding model does not fit this data",
            key, {"evidence": column.type.evidence, "confidence": column.type.confidence}))  # fmt: skip
    stats = column.text
    if stats is None:
        return findings
    missing = stats.null_count + stats.empty_count
    if stats.rows and missing / stats.rows > cfg.empty_rate_warn:
        findings.append(Finding("empty_texts", Severity.warn,
            f"{percent(missing / stats.rows)} of `{key}` is empty or missing "
            f"({missing} of {stats.rows} rows)",
            key, {"empty": stats.empty_count, "missing": stats.null_count, "rows": stats.rows}))  # fmt: skip
    if stats.duplicate_rate > cfg.duplicate_rate_warn:
        findings.append(Finding("exact_duplicates", Severity.warn,
            f"{percent(stats.duplicate_rate)} exact duplicates in `{key}` ({stats.exact_duplicates} of "
            f"{stats.rows} rows repeat an earlier text after case/space/NFKC normalisation)",
            key, {"count": stats.exact_duplicates, "rows": stats.rows}))  # fmt: skip
    if stats.near_duplicate_rate > cfg.near_duplicate_rate_warn:
        findings.append(Finding("near_duplicates", Severity.warn,
            f"{percent(stats.near_duplicate_rate)} of distinct texts in `{key}` have a near-duplicate "
            f"(char {cfg.near_duplicate_ngram}-gram Jaccard >= {cfg.near_duplicate_threshold}, "
            f"{stats.near_duplicates_checked} texts checked)",
            key, {"count": stats.near_duplicates, "checked": stats.near_duplicates_checked}))  # fmt: skip
    if stats.very_short_rate > cfg.short_text_rate_warn:
        findings.append(Finding("very_short_texts", Severity.warn,
            f"{percent(stats.very_short_rate)} of `{key}` are shorter than {cfg.short_text_chars} characters",
            key, {"count": stats.very_short_count}))  # fmt: skip
    if stats.long_count:
        findings.append(Finding("very_long_texts", Severity.warn,
            f"{stats.long_count} text(s) in `{key}` exceed {cfg.long_text_chars} characters "
            f"(longest {int(stats.chars.max)}): a whole file in one cell?",
            key, {"count": stats.long_count, "longest_chars": int(stats.chars.max)}))  # fmt: skip
    if stats.languages:
        top = ", ".join(f"{lang} {percent(share)}" for lang, share in list(stats.languages.items())[:3])
        scripts = ", ".join(f"{s} {percent(share)}" for s, share in list(stats.scripts.items())[:3])
        findings.append(Finding("language", Severity.info,
            f"`{key}`: languages {top}; scripts {scripts} ({stats.language_sampled} texts sampled)",
            key, {"languages": stats.languages, "scripts": stats.scripts}))  # fmt: skip
    return findings


def token_findings(column: ColumnProfile, cfg: ProfileConfig) -> list[Finding]:
    findings = []
    for name, stats in column.tokens.items():
        if stats.max_seq_length is not None and stats.truncation_rate > cfg.truncation_rate_warn:
            findings.append(Finding("truncation", Severity.warn,
                f"{percent(stats.truncation_rate)} of `{column.key}` exceed {stats.max_seq_length} tokens "
                f"for {name}: consider chunking or a long-context model",
                column.key, {"candidate": name, "count": stats.truncated_count,
                             "max_seq_length": stats.max_seq_length}))  # fmt: skip
        if stats.unit == "tokens" and stats.unknown_token_rate > cfg.unknown_token_rate_warn:
            findings.append(Finding("unknown_tokens", Severity.warn,
                f"{percent(stats.unknown_token_rate)} of tokens in `{column.key}` are unknown to {name}'s "
                "tokenizer: its vocabulary does not cover this text",
                column.key, {"candidate": name, "count": stats.unknown_tokens}))  # fmt: skip
    return findings
