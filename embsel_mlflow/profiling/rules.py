"""Which column and token figures call for a finding, and how it is said."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.profiling.columns import MEDIA_MODALITY, ColumnKind
from embsel_mlflow.profiling.findings import Finding, Severity, percent

if TYPE_CHECKING:
    from embsel_mlflow.config import ProfileConfig
    from embsel_mlflow.profiling.column_profile import ColumnProfile
    from embsel_mlflow.profiling.media_stats import MediaStats
    from embsel_mlflow.profiling.text_stats import TextStats


def column_findings(
    column: ColumnProfile,
    cfg: ProfileConfig,
    *,
    modalities: frozenset[str] | None = None,
    text_findings: bool = True,
) -> list[Finding]:
    """The findings of one column; ``modalities``: what the dataset's task embeds (None: a raw table).

    An image/audio column under a task that does not embed that modality is a ``modality_mismatch``
    error; otherwise its media statistics speak (bad files, silent or clipped clips, a summary).
    ``text_findings=False`` (a caption column of an image task): the language line only.
    """
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
    if kind in MEDIA_MODALITY:
        what = MEDIA_MODALITY[kind]
        if modalities is not None and what not in modalities:
            model = "/".join(sorted(modalities))
            findings.append(Finding("modality_mismatch", Severity.error,
                f"column `{key}` holds {what} paths: a {model} embedding model does not fit this data",
                key, {"evidence": column.type.evidence, "confidence": column.type.confidence,
                      **_fitting(what)}))  # fmt: skip
        elif column.media is not None:
            findings += media_findings(key, column.media, cfg)
    stats = column.text
    if stats is None or column.metadata:  # a metadata column is described, its texts not judged
        return findings
    if not text_findings:
        return findings + _language(key, stats)
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
    return findings + _language(key, stats)


def _language(key: str, stats: TextStats) -> list[Finding]:
    if not stats.languages:
        return []
    top = ", ".join(f"{lang} {percent(share)}" for lang, share in list(stats.languages.items())[:3])
    scripts = ", ".join(f"{s} {percent(share)}" for s, share in list(stats.scripts.items())[:3])
    return [Finding("language", Severity.info,
        f"`{key}`: languages {top}; scripts {scripts} ({stats.language_sampled} texts sampled)",
        key, {"languages": stats.languages, "scripts": stats.scripts})]  # fmt: skip


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


def media_findings(key: str, stats: MediaStats, cfg: ProfileConfig) -> list[Finding]:
    """A summary line, then the files that cannot be used, then silent and clipped clips."""
    findings = [Finding("media_summary", Severity.info, f"`{key}`: {_media_summary(stats)}", key, {})]
    if stats.bad:
        examples = "; ".join(
            f"{problem}: {', '.join(map(repr, values))}" for problem, values in stats.examples.items()
        )
        findings.append(Finding("bad_media", Severity.error,
            f"{stats.bad} of {stats.rows} {stats.modality} file(s) in `{key}` cannot be used: "
            f"{stats.problem_line()} (e.g. {examples}); evaluation stops on the first unless "
            "data.on_bad_media=skip",
            key, {"problems": stats.problems, "examples": stats.examples,
                  "checked": stats.checked}))  # fmt: skip
    decoded = f"{stats.checked} clip(s) decoded"
    if stats.checked and stats.silent_rate > cfg.silent_rate_warn:
        findings.append(Finding("silent_clips", Severity.warn,
            f"{percent(stats.silent_rate)} of the clips in `{key}` are silent (RMS below {cfg.silent_dbfs:g} "
            f"dBFS; {stats.silent} of {decoded}): they embed as noise",
            key, {"count": stats.silent, "decoded": stats.checked}))  # fmt: skip
    if stats.checked and stats.clipped_rate > cfg.clipped_rate_warn:
        findings.append(Finding("clipped_clips", Severity.warn,
            f"{percent(stats.clipped_rate)} of the clips in `{key}` are clipped (0.1% or more of their "
            f"samples at full scale; {stats.clipped} of {decoded})",
            key, {"count": stats.clipped, "decoded": stats.checked}))  # fmt: skip
    return findings


def _media_summary(stats: MediaStats) -> str:
    formats = _shares(stats.formats, stats.readable)
    if stats.width is not None and stats.height is not None:
        return (
            f"{stats.readable} image(s) of {stats.rows} readable; width {stats.width.min:g}-"
            f"{stats.width.max:g} px (median {stats.width.median:g}), height {stats.height.min:g}-"
            f"{stats.height.max:g} px (median {stats.height.median:g}); formats {formats}; modes "
            f"{_shares(stats.modes, stats.readable)}"
        )
    if stats.duration_s is not None:
        channels = {("mono" if k == "1" else f"{k} channels"): v for k, v in stats.channels.items()}
        rates = {f"{k} Hz": v for k, v in stats.sample_rates.items()}
        return (
            f"{stats.readable} clip(s) of {stats.rows} readable, {stats.total_seconds / 60:.1f} min; "
            f"duration {stats.duration_s.min:.1f}-{stats.duration_s.max:.1f} s (median "
            f"{stats.duration_s.median:.1f}); sample rates {_shares(rates, stats.readable)}; "
            f"{_shares(channels, stats.readable)}; formats {formats}; "
            f"{percent(stats.silent_rate)} silent, {percent(stats.clipped_rate)} clipped "
            f"({stats.checked} decoded)"
        )
    return f"none of the {stats.rows} {stats.modality} file(s) is readable"


def _shares(counts: dict[str, int], total: int) -> str:
    shown = [f"{name} {percent(count / total)}" for name, count in list(counts.items())[:4]] if total else []
    return ", ".join(shown) + (", ..." if len(counts) > 4 else "") if shown else "-"


def _fitting(modality: str) -> dict[str, list[str]]:
    """The registered task families and candidate kinds that embed ``modality`` (the way out)."""
    from embsel_mlflow.profiling.modality import fitting_kinds, fitting_tasks

    return {"tasks": fitting_tasks(modality), "kinds": fitting_kinds({modality})}
