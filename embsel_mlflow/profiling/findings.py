"""Findings: what a profile tells a person, in plain language, with a severity and the evidence."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    info = "info"
    warn = "warn"
    error = "error"  # the data cannot be used as configured (e.g. a text model on image paths)


@dataclass(frozen=True)
class Finding:
    """One observation: ``code`` is stable (tests, tags), ``message`` is for people."""

    code: str  # e.g. exact_duplicates, modality_mismatch
    severity: Severity
    message: str
    column: str = ""  # "<table>/<column>", or "" for the dataset
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity.value}


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    counts = Counter(f.severity.value for f in findings)
    return {severity.value: counts.get(severity.value, 0) for severity in Severity}


def percent(share: float) -> str:
    """0.3137 -> '31.4%' (one decimal: enough to compare, short enough to read)."""
    return f"{100 * share:.1f}%"
