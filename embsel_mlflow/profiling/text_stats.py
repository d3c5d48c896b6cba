"""Statistics of one text column: emptiness, lengths, duplicates, scripts, languages, very short texts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from embsel_mlflow.text.duplicates import evenly_spaced, near_duplicates, normalize_texts
from embsel_mlflow.text.language import language_mix, script_mix
from embsel_mlflow.text.lengths import LengthSummary

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import ProfileConfig


@dataclass
class TextStats:
    rows: int
    null_count: int  # missing cells
    empty_count: int  # present but blank or invisible only (missing not included)
    chars: LengthSummary  # over non-empty texts
    words: LengthSummary
    exact_duplicates: int  # non-empty rows whose normalised text appeared in an earlier row
    near_duplicates_checked: int
    near_duplicates: int  # checked distinct texts with a near-duplicate among the others checked
    non_ascii_share: float  # share of non-empty texts with a non-ASCII character
    very_short_count: int  # non-empty texts shorter than profile.short_text_chars
    long_count: int  # texts longer than profile.long_text_chars
    scripts: dict[str, float] = field(default_factory=dict)  # share of letters per script (sample)
    languages: dict[str, float] = field(default_factory=dict)  # share of texts per language (sample)
    language_sampled: int = 0

    @property
    def null_rate(self) -> float:
        return self.null_count / self.rows if self.rows else 0.0

    @property
    def empty_rate(self) -> float:
        return self.empty_count / self.rows if self.rows else 0.0

    @property
    def duplicate_rate(self) -> float:
        return self.exact_duplicates / self.rows if self.rows else 0.0

    @property
    def near_duplicate_rate(self) -> float:
        return self.near_duplicates / self.near_duplicates_checked if self.near_duplicates_checked else 0.0

    @property
    def very_short_rate(self) -> float:
        return self.very_short_count / self.rows if self.rows else 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "null_rate": self.null_rate,
            "empty_rate": self.empty_rate,
            "duplicate_rate": self.duplicate_rate,
            "near_duplicate_rate": self.near_duplicate_rate,
            "non_ascii_share": self.non_ascii_share,
            "very_short_rate": self.very_short_rate,
            "chars_mean": self.chars.mean,
            "chars_p95": self.chars.p95,
            "chars_max": self.chars.max,
            "words_mean": self.words.mean,
            "words_p95": self.words.p95,
        }

    def to_dict(self) -> dict[str, Any]:
        rates = {key: value for key, value in self.metrics().items() if key.endswith("rate")}
        return {**asdict(self), **rates}


def text_stats(raw: pd.Series, cfg: ProfileConfig) -> tuple[TextStats, pd.Series, pd.Series]:
    """Statistics of ``raw`` (one column, any dtype), its non-empty texts and those texts normalised."""
    import numpy as np

    from embsel_mlflow.data.tables import VISIBLE as _VISIBLE  # the data layer's own "empty text" rule
    from embsel_mlflow.profiling.columns import as_strings

    texts = as_strings(raw)
    null = raw.isna().to_numpy()
    visible = texts.str.contains(_VISIBLE).to_numpy()
    empty = ~visible & ~null
    filled = texts[visible]
    chars = filled.str.len().to_numpy(dtype=np.int64)
    words = filled.str.count(r"\S+").to_numpy(dtype=np.int64)
    normalized = normalize_texts(filled)
    distinct = normalized.drop_duplicates()
    near = near_duplicates(
        distinct.tolist(),
        threshold=cfg.near_duplicate_threshold,
        ngram=cfg.near_duplicate_ngram,
        num_perm=cfg.near_duplicate_num_perm,
        max_texts=cfg.near_duplicate_max_texts,
    )
    # a text's opening tells its language and script; a long text costs no more than a short one
    sample = [text[:300] for text in evenly_spaced(filled.tolist(), cfg.language_sample)]
    stats = TextStats(
        rows=len(raw),
        null_count=int(null.sum()),
        empty_count=int(empty.sum()),
        chars=LengthSummary.of(chars),
        words=LengthSummary.of(words),
        exact_duplicates=int(len(normalized) - len(distinct)),
        near_duplicates_checked=near.texts_checked,
        near_duplicates=near.with_near_duplicate,
        non_ascii_share=float((~filled.str.isascii()).mean()) if len(filled) else 0.0,
        very_short_count=int((chars < cfg.short_text_chars).sum()),
        long_count=int((chars > cfg.long_text_chars).sum()),
        scripts=script_mix(sample),
        languages=language_mix(sample),
        language_sampled=len(sample),
    )
    return stats, filled, normalized
