"""What one drift method reports for one window."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DriftResult:
    """One method's verdict: its statistic, a p-value under "no drift", and the alert."""

    method: str  # mean_cosine | mean_euclidean | mmd | classifier | ks
    statistic: float  # distance, MMD², cross-validated ROC AUC, or share of drifted dimensions
    p_value: float
    alpha: float
    details: dict[str, float] = field(default_factory=dict)  # e.g. bandwidth, per-fold AUCs

    @property
    def drifted(self) -> bool:
        return self.p_value < self.alpha

    def metrics(self) -> dict[str, float]:
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "drifted": float(self.drifted),
            **self.details,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": self.drifted}
