"""Quality monitoring: a labelled window's main score against the baseline, with a tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class QualityCheck:
    metric: str  # the task's main score name, e.g. accuracy, cosine_spearman
    score: float
    baseline: float
    baseline_source: str  # where the baseline came from (a run id, "reference data")
    tolerance: float

    @property
    def drop(self) -> float:
        return self.baseline - self.score

    @property
    def alert(self) -> bool:
        return self.drop > self.tolerance

    def metrics(self) -> dict[str, float]:
        return {
            "main_score": self.score,
            "baseline": self.baseline,
            "drop": self.drop,
            "alert": float(self.alert),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop, "alert": self.alert}
