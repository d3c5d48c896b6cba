"""Run descriptions (``mlflow.note.content``): the answer first, markdown escaped (``markdown``).

One function per kind of run; each takes plain values (no step library's types), so every job
describes its runs here: evaluate and select's children (``result_description``), train
(``delta_description``), profile (``profile_description``) and monitor (``monitor_description``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from embsel_mlflow.tracking.markdown import code, escape

if TYPE_CHECKING:
    from embsel_mlflow.evaluation.base import TaskResult

NOTE_TAG = "mlflow.note.content"  # the run page's Description (markdown)
MAX_FINDINGS = 5  # a description is a headline: the rest are in the run's artifacts and tags
_SEVERITY_ORDER = ("error", "warn", "info")


def result_description(result: TaskResult, model_name: str) -> str:
    """``cosine_spearman = 0.81234: <model> on stsb [test] (sts)``."""
    return escape(
        f"{result.main_score_name} = {result.main_score:.5f}: {model_name} on "
        f"{result.dataset} [{result.split}] ({result.task})"
    )


def delta_description(
    result: TaskResult,
    baseline: TaskResult,
    model_name: str,
    *,
    ci: tuple[float, float] | None = None,
    p_value: float | None = None,
) -> str:
    """A fine-tuned model's description: its score, then the delta vs the zero-shot baseline."""
    delta = result.main_score - baseline.main_score
    line = f"delta {delta:+.5f} vs the zero-shot baseline ({baseline.main_score:.5f})"
    if ci is not None:
        line += f", 95% CI [{ci[0]:+.5f}, {ci[1]:+.5f}]"
    if p_value is not None:
        line += f", p = {p_value:.3g}"
    return f"{result_description(result, model_name)}\n\n{escape(line)}"


def profile_description(
    name: str, task: str | None, counts: Mapping[str, int], findings: Iterable[tuple[str, str, str]]
) -> str:
    """``profile of stsb (sts): 0 errors, 3 warnings, 1 info`` and the first findings, worst first.

    ``counts``: findings per severity; ``findings``: (severity, code, message) triples.
    """
    totals = ", ".join(f"{count} {severity}" for severity, count in counts.items())
    head = escape(f"profile of {name} ({task or 'table'}): {totals or 'no findings'}")
    ranked = sorted(findings, key=lambda f: _SEVERITY_ORDER.index(f[0]) if f[0] in _SEVERITY_ORDER else 9)
    lines = [
        f"- {escape(severity)} {code(finding)}: {escape(message)}" for severity, finding, message in ranked
    ]
    if len(lines) > MAX_FINDINGS:
        lines = [*lines[:MAX_FINDINGS], escape(f"- ... {len(lines) - MAX_FINDINGS} more in profile.json")]
        lines[-1] = lines[-1].replace("\\- ", "- ", 1)  # a list item, as the others
    return "\n".join([head, "", *lines]) if lines else head


def monitor_description(window: str, tags: Mapping[str, str]) -> str:
    """A monitored window's alert state from its report's tags (``drift.<method>``, ``text.<signal>``,
    ``quality.drop``, ``embsel.monitor.status``): ``drift in window w1: mmd, ks; text alerts: ...``."""
    status = tags.get("embsel.monitor.status", "ok")
    drifted, text = _alerted(tags, "drift."), _alerted(tags, "text.")
    parts = [f"{status} in window {window}"]
    if drifted:
        parts.append(f"drift by {', '.join(drifted)}")
    if text:
        parts.append(f"text alerts: {', '.join(text)}")
    if tags.get("quality.drop") == "true":
        parts.append("quality drop")
    if len(parts) == 1:
        parts.append("no alert")
    return f"**{escape(parts[0])}**: {escape('; '.join(parts[1:]))}"


def _alerted(tags: Mapping[str, str], prefix: str) -> list[str]:
    """The names after ``prefix`` of the tags that say ``true``."""
    return [key[len(prefix) :] for key, value in tags.items() if key.startswith(prefix) and value == "true"]
