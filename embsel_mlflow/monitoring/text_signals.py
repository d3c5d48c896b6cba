"""Text-level signals of a window against the reference, measured with the profiling code.

Token lengths, truncation and unknown tokens come from ``profiling.tokens`` (the monitored
model's own tokenizer), languages from ``profiling.language`` on an evenly spaced sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embsel_mlflow.config import ProfileConfig, TextSignalsConfig
    from embsel_mlflow.text.tokens import CandidateTokenizer


@dataclass
class TextProfile:
    """What the signals compare, for one side (the reference or a window)."""

    texts: int
    unit: str  # tokens | words
    mean_length: float
    truncation_rate: float
    unknown_token_rate: float
    languages: dict[str, float] = field(default_factory=dict)  # share of sampled texts per language


def text_profile(texts: list[str], tokenizer: CandidateTokenizer, cfg: ProfileConfig) -> TextProfile:
    """Token statistics of every text and the language mix of a sample, via the profiling code."""
    from embsel_mlflow.text.duplicates import evenly_spaced
    from embsel_mlflow.text.language import language_mix
    from embsel_mlflow.text.tokens import token_stats

    tokens = token_stats(tokenizer, texts, batch_size=cfg.tokenize_batch_size)
    # a text's opening tells its language; the same sample rule as the profile's
    sample = [text[:300] for text in evenly_spaced(texts, cfg.language_sample)]
    return TextProfile(
        texts=len(texts),
        unit=tokens.unit,
        mean_length=float(tokens.lengths.mean()) if tokens.lengths.size else 0.0,
        truncation_rate=tokens.truncation_rate,
        unknown_token_rate=tokens.unknown_token_rate,
        languages=language_mix(sample),
    )


@dataclass
class TextSignals:
    """The window's text signals, each with its alert (threshold exceeded)."""

    length_shift: float  # relative change of the mean length
    truncation_rate_change: float
    unknown_token_rate_change: float
    new_language_share: float
    new_languages: list[str]
    current: TextProfile
    alerts: dict[str, bool]

    def metrics(self) -> dict[str, float]:
        return {
            "length_shift": self.length_shift,
            "truncation_rate_change": self.truncation_rate_change,
            "unknown_token_rate_change": self.unknown_token_rate_change,
            "new_language_share": self.new_language_share,
            f"{self.current.unit}_mean": self.current.mean_length,
            "truncation_rate": self.current.truncation_rate,
            "unknown_token_rate": self.current.unknown_token_rate,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_text_profiles(
    reference: TextProfile, current: TextProfile, cfg: TextSignalsConfig
) -> TextSignals:
    """Signals of ``current`` against ``reference`` and which ones pass their thresholds."""
    length_shift = (current.mean_length - reference.mean_length) / max(reference.mean_length, 1e-12)
    new = sorted(
        language
        for language, share in current.languages.items()
        if reference.languages.get(language, 0.0) < cfg.min_language_share
    )
    signals = TextSignals(
        length_shift=float(length_shift),
        truncation_rate_change=current.truncation_rate - reference.truncation_rate,
        unknown_token_rate_change=current.unknown_token_rate - reference.unknown_token_rate,
        new_language_share=float(sum(current.languages[language] for language in new)),
        new_languages=new,
        current=current,
        alerts={},
    )
    signals.alerts = {
        "length_shift": abs(signals.length_shift) > cfg.max_length_shift,
        "truncation_rate_change": signals.truncation_rate_change > cfg.max_truncation_increase,
        "unknown_token_rate_change": signals.unknown_token_rate_change > cfg.max_unknown_token_increase,
        "new_language_share": signals.new_language_share > cfg.max_new_language_share,
    }
    return signals
