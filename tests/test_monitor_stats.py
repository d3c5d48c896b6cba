"""The drift statistics on synthetic Gaussians: known values, calibrated nulls, detected shifts."""

from __future__ import annotations

import numpy as np
import pytest

from embsel_mlflow.config import DriftConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.monitoring.classifier import classifier_test
from embsel_mlflow.monitoring.drift import detect_drift, overall_drift
from embsel_mlflow.monitoring.ks import adjusted_p_values, ks_test
from embsel_mlflow.monitoring.mean_distance import mean_distances
from embsel_mlflow.monitoring.mmd import median_bandwidth, mmd_test, squared_distances
from embsel_mlflow.monitoring.permutation import permutation_indicators, permutation_p_value
from embsel_mlflow.monitoring.results import DriftResult
from embsel_mlflow.monitoring.sampling import fit_pca, subsample_indices


def _gaussians(n: int, dim: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """N(1, I) samples, the current one shifted by ``shift`` along the first axis.

    The common offset stands for what real embeddings share: the cosine of two means is only
    meaningful away from the origin.
    """
    rng = np.random.default_rng(seed)
    reference = rng.normal(loc=1.0, size=(n, dim)).astype(np.float32)
    current = rng.normal(loc=1.0, size=(n, dim)).astype(np.float32)
    current[:, 0] += shift
    return reference, current


def test_permutation_indicators_relabel_the_pooled_sample() -> None:
    rows = permutation_indicators(7, 5, 50, seed=3)
    assert rows.shape == (50, 12) and set(np.unique(rows)) == {0.0, 1.0}
    assert (rows.sum(axis=1) == 7).all()
    assert len({row.tobytes() for row in rows}) > 40  # different relabellings
    assert np.array_equal(rows, permutation_indicators(7, 5, 50, seed=3))  # fixed seed
    assert permutation_p_value(5.0, np.array([1.0, 2.0, 6.0, 5.0])) == pytest.approx(3 / 5)
    assert permutation_p_value(99.0, np.zeros(999)) == pytest.approx(1 / 1000)  # never 0


def test_mmd_equals_the_unbiased_estimate_computed_directly() -> None:
    reference, current = _gaussians(30, 4, 0.5, seed=1)
    result = mmd_test(reference, current, permutation_indicators(30, 30, 20, 0), 0.05, bandwidth=1.3)

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * 1.3**2))

    m = len(reference)
    xx, yy, xy = k(reference, reference), k(current, current), k(reference, current)
    direct = (xx.sum() - np.trace(xx)) / (m * (m - 1)) + (yy.sum() - np.trace(yy)) / (m * (m - 1))
    direct -= 2 * xy.mean()
    assert result.statistic == pytest.approx(direct, rel=1e-4, abs=1e-6)
    assert result.details["bandwidth"] == 1.3


def test_median_heuristic_bandwidth() -> None:
    points = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)  # squared distances 1, 9, 4
    assert median_bandwidth(squared_distances(points)) == pytest.approx(np.sqrt(4 / 2))


def test_mean_distances_are_the_distances_of_the_means() -> None:
    reference = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    current = np.array([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]], dtype=np.float32)
    cosine, euclidean = mean_distances(reference, current, permutation_indicators(3, 3, 10, 0), 0.05)
    assert (cosine.method, euclidean.method) == ("mean_cosine", "mean_euclidean")
    assert cosine.statistic == pytest.approx(1.0)  # orthogonal means
    assert euclidean.statistic == pytest.approx(np.sqrt(5.0))


def test_holm_and_bonferroni_adjustments() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    assert adjusted_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 1.0])
    assert adjusted_p_values(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjusted_p_values(p, "fdr_bh") == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5])
    with pytest.raises(ConfigError, match="correction"):
        adjusted_p_values(p, "sidak")


def test_pca_is_fitted_on_the_reference() -> None:
    rng = np.random.default_rng(0)
    data = np.zeros((200, 5), dtype=np.float32)
    data[:, 2] = rng.normal(scale=10, size=200)  # the one direction with variance
    data += rng.normal(scale=0.01, size=data.shape)
    projection = fit_pca(data, 1)
    assert abs(projection.components[0, 2]) == pytest.approx(1.0, abs=1e-3)
    assert projection.explained_variance_ratio[0] > 0.99
    assert projection.transform(data).shape == (200, 1)
    assert list(subsample_indices(10, 20, 0)) == list(range(10))
    picked = subsample_indices(1000, 50, 0)
    assert len(set(picked)) == 50 and np.array_equal(picked, subsample_indices(1000, 50, 0))


FAST = DriftConfig(permutations=200, max_samples=200)


@pytest.mark.parametrize("pca", [None, 4])
def test_every_method_detects_a_mean_shift(pca: int | None) -> None:
    reference, current = _gaussians(200, 8, 0.8, seed=5)
    if pca:  # PCA keeps the reference's high-variance directions: put the signal there
        scale = np.array([3, 3, 3, 3, 0.3, 0.3, 0.3, 0.3], dtype=np.float32)
        reference, current = reference * scale, current * scale
    cfg = DriftConfig(permutations=200, max_samples=200)
    for method in (cfg.mean_distance, cfg.mmd, cfg.classifier, cfg.ks):
        method.pca_components = pca
    results = detect_drift(reference, current, cfg)
    assert [r.method for r in results] == ["mean_cosine", "mean_euclidean", "mmd", "classifier", "ks"]
    for result in results:
        assert result.p_value < 0.01 and result.drifted, result
    assert overall_drift(results, cfg.alpha)
    classifier = next(r for r in results if r.method == "classifier")
    assert 0.6 < classifier.statistic <= 1.0  # a cross-validated AUC


def test_a_variance_change_is_detected_by_mmd_not_by_the_means() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(300, 2)).astype(np.float32)
    current = rng.normal(scale=2.5, size=(300, 2)).astype(np.float32)
    results = {r.method: r for r in detect_drift(reference, current, DriftConfig(permutations=300))}
    assert results["mmd"].p_value < 0.01
    # the means do not move; MMD's kernel sees the spread
    assert results["mean_euclidean"].p_value > 0.01


def test_the_null_is_calibrated() -> None:
    """No drift: p-values are uniform, so each method alerts in about alpha of the windows."""
    trials = 40
    p_values: dict[str, list[float]] = {}
    for seed in range(trials):
        reference, current = _gaussians(40, 4, 0.0, seed=100 + seed)
        indicators = permutation_indicators(40, 40, 200, seed)
        results = [
            *mean_distances(reference, current, indicators, 0.05),
            mmd_test(reference, current, indicators, 0.05),
            ks_test(reference, current, 0.05),
        ]
        if seed < 20:  # the classifier refits per fold: fewer trials keep the test fast
            results.append(classifier_test(reference, current, 0.05, folds=3))
        for result in results:
            p_values.setdefault(result.method, []).append(result.p_value)
    from scipy.stats import binom

    for method, values in p_values.items():
        alerts = int(np.sum(np.array(values) < 0.05))
        # more alerts than this happen with probability < 0.1% for a calibrated test
        assert alerts <= binom.ppf(0.999, len(values), 0.05), (method, alerts, len(values))
        if method in ("mean_cosine", "mean_euclidean", "mmd"):  # exact permutation tests: uniform
            assert 0.3 < np.mean(values) < 0.7, (method, np.mean(values))


def test_bad_inputs_are_one_line_errors() -> None:
    reference, current = _gaussians(20, 4, 0.0, seed=0)
    with pytest.raises(DataError, match="4 dims but window 'w' has 3"):
        detect_drift(reference, current[:, :3], FAST, window="w")
    with pytest.raises(DataError, match="at least 5"):
        detect_drift(reference, current[:2], FAST)
    with pytest.raises(ConfigError, match="every method is disabled"):
        off = DriftConfig()
        for method in (off.mean_distance, off.mmd, off.classifier, off.ks):
            method.enabled = False
        detect_drift(reference, current, off)
    with pytest.raises(ConfigError, match="alpha"):
        detect_drift(reference, current, DriftConfig(alpha=1.5))


def test_overall_verdict_is_bonferroni_over_methods() -> None:
    results = [DriftResult("a", 0.0, 0.03, 0.05), DriftResult("b", 0.0, 0.5, 0.05)]
    assert results[0].drifted and not overall_drift(results, 0.05)  # 0.03 > 0.05 / 2
    results[0].p_value = 0.01
    assert overall_drift(results, 0.05)
