"""Bootstrap CIs, paired tests, Holm and the decision rule on synthetic per-item scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from embsel_mlflow.config import SelectConfig
from embsel_mlflow.evaluation.base import TaskResult
from embsel_mlflow.selection.decision import MEAN, decide
from embsel_mlflow.selection.efficiency import Efficiency
from embsel_mlflow.selection.plot import pareto_front
from embsel_mlflow.selection.runner import CandidateInfo, PairOutcome, SelectionRun
from embsel_mlflow.selection.statistics import (
    adjust_p_values,
    bootstrap_scores,
    compare_with_best,
    confidence_interval,
    resample_indices,
)

N_QUERIES = 300


def _retrieval(name: str, ndcg: np.ndarray) -> TaskResult:
    frame = pd.DataFrame({"query_id": [str(i) for i in range(len(ndcg))], "ndcg_at_10": ndcg})
    return TaskResult("retrieval", name, "test", {"ndcg_at_10": float(ndcg.mean())}, "ndcg_at_10", frame)


def _sts(name: str, gold: np.ndarray, predicted: np.ndarray) -> TaskResult:
    from scipy.stats import spearmanr

    frame = pd.DataFrame({"gold_score": gold, "cosine_score": predicted})
    score = float(spearmanr(gold, predicted).statistic)
    return TaskResult("sts", name, "test", {"cosine_spearman": score}, "cosine_spearman", frame)


@pytest.fixture
def base_ndcg() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.0, 1.0, N_QUERIES)


def test_bootstrap_on_all_items_reproduces_the_main_score(base_ndcg: np.ndarray) -> None:
    gold = np.random.default_rng(1).normal(size=200)
    predicted = gold + np.random.default_rng(2).normal(size=200)
    for result in (_retrieval("r", base_ndcg), _sts("s", gold, predicted)):
        n = len(result.per_item)
        identity = np.arange(n)[None, :]
        assert bootstrap_scores(result, identity)[0] == pytest.approx(result.main_score, abs=1e-12)


def test_ci_of_a_mean_matches_normal_theory(base_ndcg: np.ndarray) -> None:
    result = _retrieval("r", base_ndcg)
    samples = bootstrap_scores(result, resample_indices(N_QUERIES, 4000, seed=7))
    low, high = confidence_interval(samples, 0.95)
    half_width = 1.96 * base_ndcg.std(ddof=1) / math.sqrt(N_QUERIES)
    assert low < result.main_score < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_seeded_resamples_are_reproducible() -> None:
    assert np.array_equal(resample_indices(50, 10, seed=3), resample_indices(50, 10, seed=3))
    assert not np.array_equal(resample_indices(50, 10, seed=3), resample_indices(50, 10, seed=4))


def test_two_identical_candidates_are_tied(base_ndcg: np.ndarray) -> None:
    indices = resample_indices(N_QUERIES, 1000, seed=42)
    a, b = _retrieval("d", base_ndcg), _retrieval("d", base_ndcg.copy())
    result = compare_with_best(
        {"a": a.main_score, "b": b.main_score},
        {"a": bootstrap_scores(a, indices), "b": bootstrap_scores(b, indices)},
        alpha=0.05,
        correction="holm",
    )
    loser = "b" if result["a"].verdict == "best" else "a"
    assert result[loser].verdict == "tied" and result[loser].p_value == 1.0


def test_a_clearly_better_candidate_wins_at_p_below_001(base_ndcg: np.ndarray) -> None:
    indices = resample_indices(N_QUERIES, 1000, seed=42)
    noise = np.random.default_rng(5).normal(0, 0.05, N_QUERIES)
    worse = _retrieval("d", base_ndcg)
    better = _retrieval("d", np.clip(base_ndcg + 0.1 + noise, 0, 1))
    result = compare_with_best(
        {"worse": worse.main_score, "better": better.main_score},
        {"worse": bootstrap_scores(worse, indices), "better": bootstrap_scores(better, indices)},
        alpha=0.05,
        correction="holm",
    )
    assert result["better"].verdict == "best"
    assert result["worse"].verdict == "worse" and result["worse"].p_adjusted < 0.01


def test_a_small_noisy_difference_is_not_called_a_win(base_ndcg: np.ndarray) -> None:
    indices = resample_indices(N_QUERIES, 1000, seed=42)
    noise = np.random.default_rng(6).normal(0, 0.3, N_QUERIES)
    a = _retrieval("d", base_ndcg)
    b = _retrieval("d", np.clip(base_ndcg + noise, 0, 1))
    result = compare_with_best(
        {"a": a.main_score, "b": b.main_score},
        {"a": bootstrap_scores(a, indices), "b": bootstrap_scores(b, indices)},
        alpha=0.05,
        correction="holm",
    )
    assert abs(a.main_score - b.main_score) < 0.02
    assert {c.verdict for c in result.values()} == {"best", "tied"}


def test_holm_and_bonferroni_known_values() -> None:
    assert adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p_values([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjust_p_values([0.01, 0.04], "none") == pytest.approx([0.01, 0.04])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values([0.1], "sidak")


def _efficiency(texts_per_second: float, dim: int = 384) -> Efficiency:
    nan = math.nan
    return Efficiency(texts_per_second, nan, 1.0, 2.0, nan, 1e6, dim, 10.0, nan, nan)


def _selection(results: dict[str, TaskResult], speeds: dict[str, float]) -> SelectionRun:
    run = SelectionRun({n: CandidateInfo(n, "sentence_transformers") for n in results}, {"d": "retrieval"})
    for name, result in results.items():
        run.outcomes.append(PairOutcome(name, "d", "retrieval", result, _efficiency(speeds[name])))
    return run


def test_rule_prefers_the_cheapest_of_those_tied_with_the_best(base_ndcg: np.ndarray) -> None:
    noise = np.random.default_rng(8).normal(0, 0.1, N_QUERIES)
    results = {
        "big": _retrieval("d", base_ndcg),
        # per query it differs a lot, on average by 0.001: statistically tied
        "fast": _retrieval("d", base_ndcg + noise - noise.mean() - 0.001),
        "bad": _retrieval("d", base_ndcg * 0.5),
    }
    decision = decide(_selection(results, {"big": 100.0, "fast": 4000.0, "bad": 9000.0}), SelectConfig())
    assert decision.best == "big" and decision.winner == "fast"
    assert decision.comparisons[MEAN]["bad"].verdict == "worse"
    assert "tied with big on d (p=" in decision.reasons and "40.0x faster" in decision.reasons


def test_constraints_exclude_and_explain(base_ndcg: np.ndarray) -> None:
    results = {"a": _retrieval("d", base_ndcg), "b": _retrieval("d", base_ndcg * 0.5)}
    selection = _selection(results, {"a": 100.0, "b": 1000.0})
    decision = decide(selection, SelectConfig(min_throughput=500))
    assert decision.winner == "b" and decision.violations["a"] == [
        "throughput 100 texts/s < select.min_throughput=500"
    ]
    nobody = decide(selection, SelectConfig(max_dim=10))
    assert nobody.winner is None
    assert "no candidate meets the constraints" in nobody.recommendation
    assert "dim 384 > select.max_dim=10" in nobody.recommendation


def test_pareto_front() -> None:
    points = {"slow_good": (10.0, 0.9), "fast_bad": (1000.0, 0.5), "dominated": (5.0, 0.4), "mid": (100, 0.8)}
    assert pareto_front(points) == ["slow_good", "mid", "fast_bad"]


def test_a_candidate_clearly_above_a_fixed_best_is_better_not_tied() -> None:
    """BM25 above the best complete candidate on one dataset must not read as "tied"."""
    from embsel_mlflow.selection.statistics import compare_with_best

    rng = np.random.default_rng(0)
    low = rng.normal(0.5, 0.01, size=1000)
    samples = {"complete": low, "ranker": low + 0.1}
    scores = {"complete": 0.5, "ranker": 0.6}
    comparisons = compare_with_best(scores, samples, alpha=0.05, correction="holm", best="complete")
    assert comparisons["ranker"].verdict == "better"
    assert comparisons["ranker"].p_adjusted < 0.01 and not comparisons["ranker"].significant
