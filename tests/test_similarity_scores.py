"""The STS and pair scores are MTEB's: bitwise scikit-learn's paired distances, scipy's correlations.

embsel computes them with numpy (scikit-learn and scipy.stats took 0.7 s to import on every warm
run); these tests hold them to the libraries MTEB calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from embsel_mlflow.evaluation.similarity import paired_scores
from embsel_mlflow.metrics import load_metric


def _pairs(dtype: type, seed: int, rows: int = 300, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)).astype(dtype)
    y = (x + rng.normal(scale=0.7, size=(rows, dim))).astype(dtype)
    x[3] = 0  # a zero row: scikit-learn's normalize leaves it as it is
    y[5] = x[5]  # an identical pair: distance 0
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8])
@pytest.mark.parametrize("seed", [0, 1])
def test_paired_scores_are_bitwise_scikit_learns(dtype: type, seed: int) -> None:
    from sklearn.metrics.pairwise import (
        paired_cosine_distances,
        paired_euclidean_distances,
        paired_manhattan_distances,
    )

    x, y = _pairs(dtype, seed)
    ours = paired_scores(x, y)
    expected = {
        "cosine": 1 - paired_cosine_distances(x, y),
        "manhattan": paired_manhattan_distances(x, y),
        "euclidean": paired_euclidean_distances(x, y),
    }
    for name, values in expected.items():
        assert ours[name].dtype == values.dtype, name
        np.testing.assert_array_equal(ours[name], values, err_msg=name)
    np.testing.assert_array_equal(ours["dot"], [np.dot(a, b) for a, b in zip(x, y, strict=True)])


def test_paired_scores_refuse_what_scikit_learn_refuses() -> None:
    x, y = _pairs(np.float32, 0, rows=8)
    with pytest.raises(ValueError, match="differ in shape"):
        paired_scores(x, y[:3])
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        paired_scores(x, y)


@pytest.mark.parametrize("seed", range(6))
def test_sts_correlations_are_scipys(seed: int) -> None:
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 2000))
    gold = rng.integers(0, 6, size=n).astype(float) / 5  # STS-B style: many ties
    predicted = gold + rng.normal(scale=0.4, size=n)
    if seed % 2:
        predicted = np.round(predicted, 1)  # ties in the predictions too
    out = load_metric("sts").compute(predictions=predicted.tolist(), references=gold.tolist())
    assert out["spearman"] == float(spearmanr(gold, predicted)[0])  # the same steps: bitwise
    assert out["pearson"] == pytest.approx(float(pearsonr(gold, predicted)[0]), abs=1e-14)


def test_sts_constant_input_is_undefined_as_in_scipy() -> None:
    out = load_metric("sts").compute(predictions=[0.5, 0.5, 0.5], references=[1.0, 2.0, 3.0])
    assert np.isnan(out["pearson"]) and np.isnan(out["spearman"])
