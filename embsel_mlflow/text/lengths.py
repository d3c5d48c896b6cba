"""Summary statistics of text lengths (characters, words, tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass
class LengthSummary:
    min: float
    mean: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> LengthSummary:
        import numpy as np

        if values.size == 0:
            return cls(0, 0, 0, 0, 0)
        p50, p95 = np.percentile(values, [50, 95])
        return cls(float(values.min()), float(values.mean()), float(p50), float(p95), float(values.max()))
