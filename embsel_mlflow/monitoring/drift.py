"""Run the configured drift methods on reference vs current embeddings of one window."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.monitoring.permutation import permutation_indicators
from embsel_mlflow.monitoring.results import DriftResult
from embsel_mlflow.monitoring.sampling import Projection, fit_pca, subsample_indices

if TYPE_CHECKING:
    from embsel_mlflow.config import DriftConfig, DriftMethodConfig

MIN_TEXTS = 5  # per side: fewer cannot be tested (a permutation test of 2 vs 2 has 6 relabellings)


def check_embeddings(reference: np.ndarray, current: np.ndarray, *, window: str = "current") -> None:
    """DataError when the two sides cannot be compared (dims differ, too few rows, not finite)."""
    if reference.ndim != 2 or current.ndim != 2:
        raise DataError(f"embeddings must be 2-D (texts x dims); got {reference.shape} and {current.shape}")
    if reference.shape[1] != current.shape[1]:
        raise DataError(
            f"reference embeddings have {reference.shape[1]} dims but window '{window}' has "
            f"{current.shape[1]}: they come from different models; encode both with the monitored "
            "model (drop monitor.reference_embeddings or regenerate it)"
        )
    for side, matrix in (("reference", reference), (f"window '{window}'", current)):
        if len(matrix) < MIN_TEXTS:
            raise DataError(f"{side} has {len(matrix)} texts; drift needs at least {MIN_TEXTS} per side")
        if not np.isfinite(matrix).all():
            raise DataError(f"{side} embeddings contain NaN or inf; check the model's outputs")


def detect_drift(
    reference: np.ndarray, current: np.ndarray, cfg: DriftConfig, *, window: str = "current"
) -> list[DriftResult]:
    """Every enabled method's result, on fixed-seed subsamples of at most ``cfg.max_samples`` per side."""
    check_config(cfg)
    reference = np.asarray(reference, dtype=np.float32)
    current = np.asarray(current, dtype=np.float32)
    check_embeddings(reference, current, window=window)
    ref = reference[subsample_indices(len(reference), cfg.max_samples, cfg.seed)]
    cur = current[subsample_indices(len(current), cfg.max_samples, cfg.seed + 1)]
    projections: dict[int, Projection] = {}

    def view(method: DriftMethodConfig) -> tuple[np.ndarray, np.ndarray]:
        if not method.pca_components:
            return ref, cur
        k = int(method.pca_components)
        if k not in projections:
            projections[k] = fit_pca(ref, k)  # fitted on the reference only
        return projections[k].transform(ref), projections[k].transform(cur)

    results: list[DriftResult] = []
    # one set of relabellings, shared by the permutation tests
    indicators = permutation_indicators(len(ref), len(cur), cfg.permutations, cfg.seed)
    if cfg.mean_distance.enabled:
        from embsel_mlflow.monitoring.mean_distance import mean_distances

        results += mean_distances(*view(cfg.mean_distance), indicators, cfg.alpha)
    if cfg.mmd.enabled:
        from embsel_mlflow.monitoring.mmd import mmd_test

        results.append(mmd_test(*view(cfg.mmd), indicators, cfg.alpha, bandwidth=cfg.mmd.bandwidth))
    if cfg.classifier.enabled:
        from embsel_mlflow.monitoring.classifier import classifier_test

        c = cfg.classifier
        results.append(
            classifier_test(
                *view(c), cfg.alpha, folds=c.folds, regularization=c.regularization, seed=cfg.seed
            )
        )
    if cfg.ks.enabled:
        from embsel_mlflow.monitoring.ks import ks_test

        results.append(ks_test(*view(cfg.ks), cfg.alpha, correction=cfg.ks.correction))
    return results


def overall_drift(results: list[DriftResult], alpha: float) -> bool:
    """The window's verdict: some method below alpha / #methods (Bonferroni: <= alpha without drift)."""
    return bool(results) and min(r.p_value for r in results) < alpha / len(results)


def check_config(cfg: DriftConfig) -> None:
    if not 0 < cfg.alpha < 1:
        raise ConfigError(f"monitor.drift.alpha must be in (0, 1), got {cfg.alpha}")
    if cfg.permutations < 1:
        raise ConfigError(f"monitor.drift.permutations must be >= 1, got {cfg.permutations}")
    if cfg.max_samples < MIN_TEXTS:
        raise ConfigError(f"monitor.drift.max_samples must be >= {MIN_TEXTS}, got {cfg.max_samples}")
    methods = (cfg.mean_distance, cfg.mmd, cfg.classifier, cfg.ks)
    if not any(m.enabled for m in methods):
        raise ConfigError("monitor.drift: every method is disabled; enable at least one")
    for name, method in zip(("mean_distance", "mmd", "classifier", "ks"), methods, strict=True):
        if method.pca_components is not None and method.pca_components < 1:
            raise ConfigError(f"monitor.drift.{name}.pca_components must be >= 1 or null")
