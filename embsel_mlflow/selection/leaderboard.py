"""The leaderboard: one row per candidate, main score per dataset with its CI, mean, cost columns."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from embsel_mlflow.candidates import get_kind
from embsel_mlflow.selection.decision import MEAN

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.selection.decision import Decision
    from embsel_mlflow.selection.runner import SelectionRun

EFFICIENCY_COLUMNS = {
    "texts_per_second": "texts/s",
    "tokens_per_second": "tokens/s",
    "images_per_second": "images/s",
    "audio_seconds_per_second": "audio s/s",  # seconds of sound embedded per second
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "model_size_mb": "size MB",
    "num_parameters": "params",
    "embedding_dim": "dim",
    "peak_memory_mb": "peak MB",
    "cost_usd": "cost USD",
    "bytes_per_vector": "B/vector",
    "memory_per_million_docs_mb": "MB/1M docs",
}
DELTA = "vs fp32"  # column: the variant's deltas against its candidate's fp32 variant
# Shown in the markdown only when some candidate has a value: an image selection shows images/s,
# not empty texts/s and tokens/s columns (the CSV and table keep every column).
_MEDIA_SPEEDS = ("images_per_second", "audio_seconds_per_second")
_TEXT_SPEEDS = ("texts_per_second", "tokens_per_second")


def _pair_status(selection: SelectionRun, candidate: str, dataset: str) -> str | None:
    outcome = selection.outcome(candidate, dataset)
    if outcome.not_applicable:
        return "n/a"
    if outcome.error:
        return "FAILED"
    return None


def leaderboard_frame(selection: SelectionRun, decision: Decision) -> pd.DataFrame:
    """Rows sorted by mean main score (complete candidates first); numbers unrounded."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for name, info in selection.candidates.items():
        row: dict[str, Any] = {"candidate": name, "kind": info.kind}
        for dataset in [*decision.datasets, MEAN]:
            score = decision.scores[name].get(dataset, math.nan)
            low, high = decision.intervals[name].get(dataset, (math.nan, math.nan))
            row[dataset] = score
            row[f"{dataset} ci_low"], row[f"{dataset} ci_high"] = low, high
            comparison = decision.comparisons.get(dataset, {}).get(name)
            row[f"{dataset} vs best"] = (
                comparison.verdict
                if comparison
                else (_pair_status(selection, name, dataset) if dataset != MEAN else "incomplete")
            )
            row[f"{dataset} p"] = comparison.p_adjusted if comparison else math.nan
        deltas = decision.variant_deltas.get(name, {})
        for dataset in decision.datasets:
            delta = deltas.get(dataset)
            row[f"{dataset} {DELTA}"] = -delta.difference if delta else math.nan
            row[f"{dataset} {DELTA} p"] = delta.p_adjusted if delta else math.nan
        row[DELTA] = _delta_text(name, decision)
        cost = decision.costs[name]
        for key in EFFICIENCY_COLUMNS:
            row[key] = getattr(cost, key)
        row["constraints"] = "; ".join(decision.violations[name]) or "ok"
        row["registrable"] = info.registrable
        notes = []
        if not info.registrable and info.load_error is None:
            kind = get_kind(info.kind)
            if not kind.embeds:
                notes.append("not an embedding model: cannot be registered or monitored")
            elif kind.fitted_per_dataset and kind.registrable:  # its fit on one dataset can be served
                notes.append("fitted per dataset: registrable from a selection over one dataset")
            elif kind.fitted_per_dataset:
                notes.append("fitted per dataset: cannot be registered")
            else:
                notes.append("cannot be registered (no model to save, e.g. a remote API)")
        notes += [
            f"fine-tuned from {f.candidate} on {f.dataset}'s train split (run {f.run_id})"
            for f in selection.finetunes
            if f.tuned == name
        ]
        failed = [o for o in selection.outcomes if o.candidate == name and o.error]
        notes += [f"{o.dataset} FAILED: {o.error}" for o in failed]
        if name == decision.winner:
            notes.insert(0, "WINNER")
        row["notes"] = " | ".join(notes)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["_complete"] = frame["candidate"].isin(decision.complete)
    frame = frame.sort_values(["_complete", MEAN], ascending=[False, False], na_position="last")
    return frame.drop(columns="_complete").reset_index(drop=True)


def _delta_text(name: str, decision: Decision) -> str:
    """``stsb +0.0001 (p=0.81); scifact -0.0004 (p=0.62)``, ``baseline``, or empty."""
    if name in decision.baselines.values() and decision.baselines.get(name) == name:
        return "baseline"
    deltas = decision.variant_deltas.get(name, {})
    return "; ".join(
        f"{dataset} {-c.difference:+.4f} (p={c.p_adjusted:.2g})"
        for dataset, c in deltas.items()
        if dataset in decision.datasets
    )


# Counts: printed as integers (384, not 384.0), though a NaN makes their column float.
_COUNTS = ("num_parameters", "embedding_dim", "bytes_per_vector")


def _number(value: Any, digits: int = 4, *, count: bool = False) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if count and value.is_integer():
            return f"{value:,.0f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def shown_efficiency_columns(frame: pd.DataFrame) -> list[str]:
    """The efficiency columns the markdown shows: every one, but the throughput units nobody was
    measured in (images/s and audio s/s for texts; texts/s and tokens/s for a media-only selection)."""

    def measured(key: str) -> bool:
        return key in frame.columns and bool(frame[key].notna().any())

    hidden = {key for key in _MEDIA_SPEEDS if not measured(key)}
    if any(measured(key) for key in _MEDIA_SPEEDS) and not any(measured(key) for key in _TEXT_SPEEDS):
        hidden.update(_TEXT_SPEEDS)
    return [key for key in EFFICIENCY_COLUMNS if key not in hidden]


def leaderboard_markdown(frame: pd.DataFrame, datasets: list[str], *, code_spans: bool = False) -> str:
    """A readable markdown table: score [CI] (verdict) per dataset, mean, then efficiency.

    ``code_spans``: each score and CI in a code span, for renderers (the MLflow UI's run
    description) that would read ``[low, high] (verdict)`` as a link and drop the verdict.
    """
    with_deltas = DELTA in frame.columns and bool(frame[DELTA].astype(bool).any())
    shown = shown_efficiency_columns(frame)
    header = ["candidate", *datasets, MEAN, *([DELTA] if with_deltas else [])]
    header += [EFFICIENCY_COLUMNS[key] for key in shown]
    header += ["constraints", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        cells = [str(row["candidate"])]
        for dataset in [*datasets, MEAN]:
            score = row[dataset]
            if isinstance(score, float) and math.isnan(score):
                cells.append(str(row[f"{dataset} vs best"] or "-"))
                continue
            verdict = row[f"{dataset} vs best"]
            p = row[f"{dataset} p"]
            tag = verdict if verdict == "best" else f"{verdict}, p={p:.3g}"
            interval = f"{score:.4f} [{row[f'{dataset} ci_low']:.4f}, {row[f'{dataset} ci_high']:.4f}]"
            cells.append(f"`{interval}` ({tag})" if code_spans else f"{interval} ({tag})")
        if with_deltas:
            cells.append(str(row[DELTA]) or "-")
        cells += [_number(row[key], 2, count=key in _COUNTS) for key in shown]
        cells += [str(row["constraints"]), str(row["notes"]).replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
