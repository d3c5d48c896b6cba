"""The profile of one column: its type, text or media statistics and token lengths per candidate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.profiling.columns import ColumnType
    from embsel_mlflow.profiling.media_stats import MediaStats
    from embsel_mlflow.profiling.text_stats import TextStats
    from embsel_mlflow.text.tokens import TokenStats


@dataclass
class ColumnProfile:
    table: str  # table role: test, train, corpus, queries, qrels/test, table
    column: str  # column name after the role mapping
    type: ColumnType
    text: TextStats | None = None
    media: MediaStats | None = None  # image and audio columns (never text statistics on those)
    tokens: dict[str, TokenStats] = field(default_factory=dict)  # candidate -> stats
    # a text column the task does not embed (STS-B's source1): described, no findings, no metrics
    metadata: bool = False
    # non-empty texts as read, and normalised (same index): for token counts and cross-table checks
    filled: pd.Series | None = field(default=None, repr=False)
    normalized: pd.Series | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.table}/{self.column}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "type": self.type.to_dict(),
            "metadata": self.metadata,
            "text": self.text.to_dict() if self.text else None,
            "media": self.media.to_dict() if self.media else None,
            "tokens": {name: stats.to_dict() for name, stats in self.tokens.items()},
        }
