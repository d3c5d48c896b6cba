"""A self-contained HTML report, plots inlined as PNG data URIs: findings, columns, lengths, media, labels."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embsel_mlflow.profiling.column_profile import ColumnProfile
    from embsel_mlflow.profiling.media_stats import MediaStats
    from embsel_mlflow.profiling.profile import DataProfile

_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    ".error{color:#b00020;font-weight:bold}.warn{color:#b36b00}.info{color:#555}img{max-width:100%}"
)


def html_report(profile: DataProfile) -> str:
    parts = [f"<h1>Data profile: {_e(profile.name)}</h1>", f"<p>task: {_e(profile.task or 'table')}</p>"]
    parts.append("<h2>Findings</h2><ul>")
    parts += [
        f'<li class="{f.severity.value}">[{f.severity.value}] {_e(f.message)}</li>' for f in profile.findings
    ]
    parts.append(
        "</ul><h2>Columns</h2><table><tr><th>column</th><th>kind</th><th>confidence</th><th>evidence</th></tr>"
    )
    parts += [
        f"<tr><td>{_e(c.key)}</td><td>{'metadata' if c.metadata else c.type.kind.value}</td>"
        f"<td>{c.type.confidence:.2f}</td>"
        f"<td>{_e(c.type.evidence)}</td></tr>"
        for c in profile.columns
    ]
    parts.append("</table>")
    for column in profile.columns:
        if column.text is None:
            continue
        stats = column.text
        parts.append(f"<h3>{_e(column.key)}</h3><table>")
        rows = {
            "rows": stats.rows, "missing": stats.null_count, "empty": stats.empty_count,
            "exact duplicates": stats.exact_duplicates,
            "near duplicates": f"{stats.near_duplicates} of {stats.near_duplicates_checked} checked",
            "chars min/mean/median/p95/max": _summary(stats.chars),
            "words min/mean/median/p95/max": _summary(stats.words),
            "languages": _shares(stats.languages), "scripts": _shares(stats.scripts),
        }  # fmt: skip
        parts += [f"<tr><th>{_e(k)}</th><td>{_e(str(v))}</td></tr>" for k, v in rows.items()]
        parts.append("</table>")
        if column.tokens:
            parts.append(_img(_length_figure(column)))
        if stats.scripts:
            parts.append(_img(_bar_figure(stats.scripts, f"script mix of {column.key}")))
    for column in profile.columns:
        if column.media is not None:
            parts += _media_section(column.key, column.media)
    for check, figures in profile.checks.items():
        if check.startswith("labels/") and figures.get("class_counts"):
            parts.append(f"<h3>{_e(check)}</h3>" + _img(_bar_figure(figures["class_counts"], check)))
        elif figures:
            shown = {k: v for k, v in figures.items() if not isinstance(v, list | dict)}
            parts.append(f"<h3>{_e(check)}</h3><pre>{_e(str(shown))}</pre>")
    head = f"<!doctype html><html><head><meta charset='utf-8'><style>{_STYLE}</style></head>"
    return f"{head}<body>{''.join(parts)}</body></html>"


def _media_section(key: str, stats: MediaStats) -> list[str]:
    """Sizes, formats and modes of an image column; durations, rates and channels of an audio one."""
    rows: dict[str, Any] = {"rows": stats.rows, "readable": stats.readable, "formats": _counts(stats.formats)}
    bars: dict[str, float | int] = {}
    rows.update({f"bad: {name}": f"{count} (e.g. {', '.join(stats.examples.get(name, []))})"
                 for name, count in stats.problems.items()})  # fmt: skip
    if stats.width is not None and stats.height is not None:
        rows.update({"width px min/mean/median/p95/max": _summary(stats.width),
                     "height px min/mean/median/p95/max": _summary(stats.height),
                     "most common sizes": _counts(stats.sizes), "modes": _counts(stats.modes),
                     "checked whole": stats.checked})  # fmt: skip
        bars = dict(stats.sizes)
    if stats.duration_s is not None:
        rows.update({"duration s min/mean/median/p95/max": _summary(stats.duration_s),
                     "total minutes": f"{stats.total_seconds / 60:.1f}",
                     "sample rates (Hz)": _counts(stats.sample_rates), "channels": _counts(stats.channels),
                     "silent clips": f"{stats.silent} of {stats.checked} decoded",
                     "clipped clips": f"{stats.clipped} of {stats.checked} decoded"})  # fmt: skip
        bars = {f"{rate} Hz": count for rate, count in stats.sample_rates.items()}
    parts = [f"<h3>{_e(key)} ({stats.modality})</h3><table>"]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(str(v))}</td></tr>" for k, v in rows.items()]
    parts.append("</table>")
    if bars:
        what = "image sizes" if stats.modality == "image" else "sample rates"
        parts.append(_img(_bar_figure(bars, f"{what} in {key}")))
    return parts


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in list(counts.items())[:10]) or "-"


def _e(text: str) -> str:
    return html.escape(text)


def _summary(summary: Any) -> str:
    return " / ".join(f"{v:g}" for v in (summary.min, summary.mean, summary.median, summary.p95, summary.max))


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.1f}%" for k, v in list(shares.items())[:5])


def _length_figure(column: ColumnProfile) -> Any:
    """Length histogram per candidate, with a line at its max_seq_length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.5))
    for name, stats in column.tokens.items():
        axes.hist(stats.lengths, bins=50, alpha=0.5, label=f"{name} ({stats.unit})")
        if stats.max_seq_length is not None:
            axes.axvline(stats.max_seq_length, linestyle="--", color="black")
            axes.annotate(
                f"{name} max {stats.max_seq_length}", (stats.max_seq_length, 0), rotation=90, fontsize=7
            )
    axes.set_title(f"length of {column.key}")
    axes.set_yscale("log")
    axes.legend(fontsize=7)
    return figure


def _bar_figure(values: dict[str, float | int], title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = dict(list(values.items())[:40])
    figure, axes = plt.subplots(figsize=(8, 3))
    axes.bar([str(k) for k in shown], list(shown.values()))
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=90, labelsize=6)
    figure.tight_layout()
    return figure


def _img(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
