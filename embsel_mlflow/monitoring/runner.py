"""One window end to end, without MLflow: encode, drift tests, text signals, most shifted items.

Windows hold texts, or image / audio references (``media.Media``): the embedding drift tests and
the most shifted items work on embeddings, so they are the same for every modality; the text
signals (token lengths, truncation, unknown tokens, languages) are for texts only and are left
out of image and audio windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from embsel_mlflow.errors import DataError
from embsel_mlflow.media.items import TEXT, Media, modality_of
from embsel_mlflow.monitoring.drift import check_embeddings, detect_drift, overall_drift
from embsel_mlflow.monitoring.neighbours import most_shifted
from embsel_mlflow.monitoring.quality import QualityCheck
from embsel_mlflow.monitoring.text_signals import (
    TextProfile,
    TextSignals,
    compare_text_profiles,
    text_profile,
)
from embsel_mlflow.monitoring.windows import ITEM_NOUNS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from embsel_mlflow.config import MonitorConfig, ProfileConfig
    from embsel_mlflow.evaluation.base import TextEncoder
    from embsel_mlflow.monitoring.results import DriftResult
    from embsel_mlflow.monitoring.windows import Window
    from embsel_mlflow.text.tokens import CandidateTokenizer

OK, DRIFT, QUALITY_DROP = "ok", "drift", "quality_drop"
log = logging.getLogger("embsel.monitor")

Baseline = tuple[float, str, str]  # (score, metric name, where it came from)
Score = tuple[str, float]  # (main score name, main score) of a labelled window


@dataclass
class Reference:
    texts: list[str | Media]  # the reference items: texts, or image / audio references
    embeddings: np.ndarray
    text_profile: TextProfile | None = None
    role: str | None = None  # the role its texts were embedded in; every window is embedded in it too

    @property
    def modality(self) -> str:
        return modality_of(self.texts)


def labels(items: Sequence[str | Media]) -> list[str]:
    """How a person reads each item in the shifted-items table: the text, or the media file's path."""
    return [item.source if isinstance(item, Media) else item for item in items]


def encode_items(encoder: TextEncoder, items: Sequence[str | Media], role: str | None) -> np.ndarray:
    """float32 embeddings of texts or media items (the encode protocol takes either, one modality a call)."""
    # cast: the protocol's annotation still says Sequence[str]; the call is the same for media
    return np.asarray(encoder.encode(cast("Sequence[str]", items), role=role), dtype=np.float32)


def _texts_only(items: Sequence[str | Media]) -> list[str] | None:
    """The items as texts, or None when they are images or audio (no text signals for those)."""
    return [item for item in items if isinstance(item, str)] if modality_of(items) == TEXT else None


def prepare_reference(
    texts: Sequence[str | Media],
    encoder: TextEncoder,
    *,
    tokenizer: CandidateTokenizer | None,
    cfg: MonitorConfig,
    profile: ProfileConfig,
    embeddings: np.ndarray | None = None,
    role: str | None = None,
) -> Reference:
    """Reference embeddings (through the encoder, i.e. the embedding cache, unless given) and text profile.

    ``texts``: texts, or image / audio references (no text profile then). ``role``: the role the
    texts are embedded in, as evaluate embeds them (``task_texts``: "query" for a retrieval
    reference), so a prompted model gives the same embeddings and the cache is shared.
    """
    if not texts:
        raise DataError("the reference data has no texts; check data= and monitor.reference_split")
    if embeddings is None:
        embeddings = encode_items(encoder, texts, role)
    elif len(embeddings) != len(texts):
        raise DataError(
            f"monitor.reference_embeddings has {len(embeddings)} rows for {len(texts)} reference texts; "
            "it needs one row per reference text, in order"
        )
    plain = _texts_only(texts)
    signals = None
    if cfg.text.enabled and tokenizer is not None and plain is not None:
        signals = text_profile(plain, tokenizer, profile)
    return Reference(list(texts), np.asarray(embeddings, dtype=np.float32), signals, role)


@dataclass
class WindowReport:
    name: str
    texts: int  # items embedded (texts, images or audio clips: see ``modality``)
    drift: list[DriftResult]
    drifted: bool  # the window's verdict over all methods (Bonferroni)
    text: TextSignals | None
    shifted: list[dict]
    embeddings: np.ndarray = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    quality: QualityCheck | None = None
    modality: str = TEXT

    @property
    def noun(self) -> str:
        """texts | images | audio_clips: the window's item count is logged as window/<noun>."""
        return ITEM_NOUNS.get(self.modality, "items").replace(" ", "_")

    @property
    def status(self) -> str:
        if self.quality is not None and self.quality.alert:
            return QUALITY_DROP
        return DRIFT if self.drifted else OK

    def metrics(self) -> dict[str, float]:
        """Flat metric keys: drift/<method>/<name>, text/<signal>, quality/<name>, window/texts
        (window/images, window/audio_clips for media windows)."""
        metrics = {f"window/{self.noun}": float(self.texts), "drift/drifted": float(self.drifted)}
        for result in self.drift:
            metrics.update({f"drift/{result.method}/{k}": v for k, v in result.metrics().items()})
        if self.text is not None:
            metrics.update({f"text/{k}": v for k, v in self.text.metrics().items()})
        if self.quality is not None:
            metrics.update({f"quality/{k}": v for k, v in self.quality.metrics().items()})
        return metrics

    def tags(self) -> dict[str, str]:
        tags = {f"drift.{r.method}": str(r.drifted).lower() for r in self.drift}
        if self.text is not None:
            tags.update({f"text.{k}": str(v).lower() for k, v in self.text.alerts.items()})
        if self.quality is not None:
            tags["quality.drop"] = str(self.quality.alert).lower()
        tags["embsel.monitor.status"] = self.status
        return tags

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "texts": self.texts,
            "modality": self.modality,
            "status": self.status,
            "drifted": self.drifted,
            "drift": [r.to_dict() for r in self.drift],
            "text": self.text.to_dict() if self.text is not None else None,
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "seconds": self.seconds,
        }


def monitor_window(
    reference: Reference,
    texts: Sequence[str | Media],
    encoder: TextEncoder,
    *,
    cfg: MonitorConfig,
    profile: ProfileConfig,
    tokenizer: CandidateTokenizer | None = None,
    name: str = "current",
    embeddings: np.ndarray | None = None,
) -> WindowReport:
    """Encode the window (unless ``embeddings`` are given) and run every check against ``reference``.

    ``texts``: texts, or image / audio references, of the reference's modality. The window is
    embedded in the reference's role, so drift compares like with like.
    """
    if not texts:
        raise DataError(f"window {name}: the window is empty (no texts); give a window with texts")
    modality = modality_of(texts)
    if modality != reference.modality:
        raise DataError(
            f"window {name}: holds {ITEM_NOUNS.get(modality, modality)} but the reference holds "
            f"{ITEM_NOUNS.get(reference.modality, reference.modality)}; give a window of the same kind"
        )
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if embeddings is None:
        embeddings = encode_items(encoder, texts, reference.role)
    seconds["encode"] = time.perf_counter() - started
    check_embeddings(reference.embeddings, embeddings, window=name)
    started = time.perf_counter()
    drift = detect_drift(reference.embeddings, embeddings, cfg.drift, window=name)
    seconds["drift"] = time.perf_counter() - started
    started = time.perf_counter()
    signals = None
    plain = _texts_only(texts)
    if reference.text_profile is not None and tokenizer is not None and plain is not None:
        current = text_profile(plain, tokenizer, profile)
        signals = compare_text_profiles(reference.text_profile, current, cfg.text)
    seconds["text"] = time.perf_counter() - started
    started = time.perf_counter()
    shifted = most_shifted(
        reference.embeddings, labels(reference.texts), embeddings, labels(texts),
        top=cfg.shifted_examples, neighbours=cfg.neighbours, seed=cfg.drift.seed,
    )  # fmt: skip
    seconds["neighbours"] = time.perf_counter() - started
    return WindowReport(
        name=name,
        texts=len(texts),
        drift=drift,
        drifted=overall_drift(drift, cfg.drift.alpha),
        text=signals,
        shifted=shifted,
        embeddings=embeddings,
        seconds=seconds,
        modality=modality,
    )


def report_window(
    reference: Reference,
    window: Window,
    encoder: TextEncoder,
    *,
    cfg: MonitorConfig,
    profile: ProfileConfig,
    tokenizer: CandidateTokenizer | None,
    baseline: Callable[[], Baseline],
    score: Callable[[Window], Score],
) -> WindowReport:
    """A window's whole report: drift, text signals and, when it is labelled, quality.

    ``baseline`` (asked first, once per labelled window) and ``score`` (re-evaluates the window with
    the reference's task, as ``evaluate`` does) come from the caller: they log to MLflow.
    """
    report = monitor_window(
        reference, window.items, encoder, cfg=cfg, profile=profile, tokenizer=tokenizer, name=window.name
    )
    if window.quality_data is not None and cfg.quality.enabled:
        base, metric, source = baseline()
        name, value = score(window)
        if name != metric and metric != "main_score":
            log.info("quality: window %s scored by %s, baseline metric %s", window.name, name, metric)
        report.quality = QualityCheck(name, value, base, source, cfg.quality.tolerance)
    return report


def summary_line(report: WindowReport, step: int) -> str:
    """The one console line of a monitored window."""
    methods = ", ".join(f"{r.method} p={r.p_value:.3g}{'*' if r.drifted else ''}" for r in report.drift)
    count = f"{report.texts} {report.noun.replace('_', ' ')}"
    line = f"window {report.name} [step {step}, {count}]: {report.status.upper()}  ({methods})"
    if report.quality is not None:
        q = report.quality
        line += f"; {q.metric} {q.score:.4f} vs baseline {q.baseline:.4f}"
        line += f" (drop {q.drop:+.4f}, tolerance {q.tolerance})"
    if report.text is not None:
        flagged = [name for name, alert in report.text.alerts.items() if alert]
        if flagged:
            line += f"; text signals: {', '.join(flagged)}"
    return line
