"""From scores to a recommendation: CIs, paired tests, cost constraints and the decision rule.

The rule: among candidates scored on every dataset and meeting the constraints, take the best
mean main score; among those statistically tied with it, prefer the cheapest (lowest API cost,
then highest throughput).

Throughput is in the unit of the embedded items (``efficiency.THROUGHPUT``): texts/s, images/s or
audio s/s. A candidate's :attr:`CandidateCost.speed` is its throughput in the first of these it
was measured in; candidates compared with each other were scored on the same datasets, so they
share that unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.selection.efficiency import THROUGHPUT
from embsel_mlflow.selection.statistics import (
    Comparison,
    bootstrap_scores,
    compare_with_best,
    confidence_interval,
    dataset_seed,
    resample_indices,
)

if TYPE_CHECKING:
    from embsel_mlflow.config import SelectConfig
    from embsel_mlflow.selection.runner import SelectionRun

MEAN = "mean"  # the pseudo-dataset "mean over datasets" in score tables


@dataclass
class CandidateCost:
    """A candidate's efficiency over the datasets it was measured on."""

    texts_per_second: float = math.nan  # mean over datasets
    tokens_per_second: float = math.nan
    latency_p50_ms: float = math.nan
    latency_p95_ms: float = math.nan  # worst dataset
    model_size_mb: float = math.nan
    num_parameters: float = math.nan
    embedding_dim: float = math.nan
    peak_memory_mb: float = math.nan  # worst dataset
    cost_usd: float = math.nan  # sum over datasets (API candidates)
    bytes_per_vector: float = math.nan  # one stored embedding
    memory_per_million_docs_mb: float = math.nan
    images_per_second: float = math.nan  # mean over image datasets
    audio_seconds_per_second: float = math.nan  # mean over audio datasets

    @property
    def speed(self) -> float:
        """Throughput in the first unit measured (texts/s, else images/s, else audio s/s); NaN if none."""
        return self._speed()[0]

    @property
    def speed_unit(self) -> str:
        """The unit of :attr:`speed`, as the leaderboard writes it (texts/s when nothing was measured)."""
        return self._speed()[1]

    def _speed(self) -> tuple[float, str]:
        for field_name, unit in THROUGHPUT.values():
            value = getattr(self, field_name)
            if not math.isnan(value):
                return value, unit
        return math.nan, THROUGHPUT["text"][1]

    def sort_key(self) -> tuple[float, float]:
        """Cheaper first: API spend, then higher throughput."""
        cost = 0.0 if math.isnan(self.cost_usd) else self.cost_usd
        speed = 0.0 if math.isnan(self.speed) else self.speed
        return (cost, -speed)


# constraint key -> (CandidateCost field, limit is a maximum?, label, unit; None: the cost's speed_unit)
CONSTRAINTS: dict[str, tuple[str, bool, str, str | None]] = {
    "max_latency_ms": ("latency_p95_ms", True, "p95 latency", " ms"),
    "min_throughput": ("speed", False, "throughput", None),  # in the datasets' unit: texts/s, images/s
    "max_dim": ("embedding_dim", True, "dim", ""),
    "max_params": ("num_parameters", True, "parameters", ""),
    "max_memory_mb": ("peak_memory_mb", True, "peak memory", " MB"),
    "max_cost": ("cost_usd", True, "cost", " USD"),
}


@dataclass
class Decision:
    """Scores with CIs, comparisons with the best, constraint checks and the recommendation."""

    datasets: list[str]
    scores: dict[str, dict[str, float]]  # candidate -> dataset (and MEAN) -> main score
    intervals: dict[str, dict[str, tuple[float, float]]]
    comparisons: dict[str, dict[str, Comparison]]  # dataset (and MEAN) -> candidate -> vs best
    costs: dict[str, CandidateCost]
    violations: dict[str, list[str]]  # candidate -> constraint violations
    complete: list[str]  # candidates scored on every dataset
    eligible: list[str]  # complete and meeting the constraints
    best: str | None = None
    winner: str | None = None
    tied_with_best: list[str] = field(default_factory=list)
    reasons: str = ""
    problem: str | None = None  # why there is no winner
    # variant -> dataset (and MEAN) -> paired test against its candidate's fp32 variant
    # (Comparison.difference = baseline - variant)
    variant_deltas: dict[str, dict[str, Comparison]] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)  # variant -> baseline

    @property
    def recommendation(self) -> str:
        return f"{self.winner}: {self.reasons}" if self.winner else f"no recommendation: {self.problem}"


def aggregate_costs(selection: SelectionRun) -> dict[str, CandidateCost]:
    costs = {}
    for name in selection.candidates:
        measured = [o.efficiency for o in selection.outcomes if o.candidate == name and o.efficiency]
        cost = CandidateCost()
        if measured:

            def values(key: str, measured=measured) -> list[float]:
                return [v for e in measured if not math.isnan(v := getattr(e, key))]

            def reduce(key: str, how) -> float:
                found = values(key)
                return float(how(found)) if found else math.nan

            cost = CandidateCost(
                texts_per_second=reduce("texts_per_second", np.mean),
                tokens_per_second=reduce("tokens_per_second", np.mean),
                latency_p50_ms=reduce("latency_p50_ms", np.mean),
                latency_p95_ms=reduce("latency_p95_ms", max),
                model_size_mb=reduce("model_size_mb", max),
                num_parameters=reduce("num_parameters", max),
                embedding_dim=reduce("embedding_dim", max),
                peak_memory_mb=reduce("peak_memory_mb", max),
                cost_usd=reduce("cost_usd", sum),
                bytes_per_vector=reduce("bytes_per_vector", max),
                memory_per_million_docs_mb=reduce("memory_per_million_docs_mb", max),
                images_per_second=reduce("images_per_second", np.mean),
                audio_seconds_per_second=reduce("audio_seconds_per_second", np.mean),
            )
        costs[name] = cost
    return costs


def constraint_violations(cost: CandidateCost, cfg: SelectConfig) -> list[str]:
    """Human-readable violations, e.g. "p95 latency 12.3 ms > max_latency_ms 5"."""
    found = []
    for key, (attribute, is_max, label, unit) in CONSTRAINTS.items():
        limit = getattr(cfg, key)
        if limit is None:
            continue
        value = getattr(cost, attribute)
        unit = f" {cost.speed_unit}" if unit is None else unit
        if math.isnan(value):
            if key == "max_cost":
                continue  # a local model costs nothing per call
            found.append(f"{label} unknown (select.{key}={limit:g})")
        elif (value > limit) if is_max else (value < limit):
            found.append(f"{label} {value:.4g}{unit} {'>' if is_max else '<'} select.{key}={limit:g}")
    return found


def decide(selection: SelectionRun, cfg: SelectConfig) -> Decision:
    """Bootstrap every scored pair, compare with the best, apply constraints and the rule."""
    datasets = list(selection.datasets)
    scores: dict[str, dict[str, float]] = {name: {} for name in selection.candidates}
    intervals: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in selection.candidates}
    samples: dict[str, dict[str, np.ndarray]] = {name: {} for name in selection.candidates}
    for dataset in datasets:
        results = [
            (o.candidate, o.result)
            for o in selection.outcomes
            if o.dataset == dataset and o.result is not None  # the pair was scored (PairOutcome.ok)
        ]
        if not results:
            continue
        per_item = results[0][1].per_item
        # no per-item table: nothing to resample (resample_indices refuses 0 items with a DataError)
        n_items = len(per_item) if per_item is not None else 0
        indices = resample_indices(n_items, cfg.resamples, dataset_seed(cfg.seed, dataset))
        for candidate, result in results:
            scores[candidate][dataset] = result.main_score
            samples[candidate][dataset] = bootstrap_scores(result, indices)
            intervals[candidate][dataset] = confidence_interval(samples[candidate][dataset], cfg.confidence)

    complete = [name for name in selection.candidates if len(scores[name]) == len(datasets)]
    for name in complete:
        scores[name][MEAN] = float(np.mean([scores[name][d] for d in datasets]))
        samples[name][MEAN] = np.mean([samples[name][d] for d in datasets], axis=0)
        intervals[name][MEAN] = confidence_interval(samples[name][MEAN], cfg.confidence)

    costs = aggregate_costs(selection)
    violations = {name: constraint_violations(costs[name], cfg) for name in selection.candidates}
    deltas = variant_deltas(selection.baselines, scores, samples, cfg)
    for name, by_dataset in deltas.items():
        violations[name] += quality_drops(name, by_dataset, cfg.max_quality_drop)
    eligible = [name for name in complete if not violations[name]]
    # The reference every candidate is tested against: the best eligible one (else the best scored).
    comparisons: dict[str, dict[str, Comparison]] = {}
    for dataset in [*datasets, MEAN]:
        scored = {name: s[dataset] for name, s in scores.items() if dataset in s}
        reference = _best([n for n in eligible if n in scored], scored) or _best(list(scored), scored)
        comparisons[dataset] = compare_with_best(
            scored,
            {name: samples[name][dataset] for name in scored},
            alpha=cfg.alpha,
            correction=cfg.correction,
            best=reference,
        )

    decision = Decision(datasets, scores, intervals, comparisons, costs, violations, complete, eligible)
    decision.variant_deltas, decision.baselines = deltas, dict(selection.baselines)
    _apply_rule(decision, selection)
    return decision


def variant_deltas(
    baselines: dict[str, str],
    scores: dict[str, dict[str, float]],
    samples: dict[str, dict[str, np.ndarray]],
    cfg: SelectConfig,
) -> dict[str, dict[str, Comparison]]:
    """Each variant against its candidate's fp32 variant, per dataset: paired bootstrap test."""
    groups: dict[str, list[str]] = {}
    for variant, baseline in baselines.items():
        if variant != baseline:
            groups.setdefault(baseline, []).append(variant)
    found: dict[str, dict[str, Comparison]] = {}
    for baseline, variants in groups.items():
        for dataset in scores.get(baseline, {}):
            scored = [v for v in variants if dataset in scores[v]]
            if not scored:
                continue
            group = [baseline, *scored]
            tested = compare_with_best(
                {name: scores[name][dataset] for name in group},
                {name: samples[name][dataset] for name in group},
                alpha=cfg.alpha,
                correction=cfg.correction,
                best=baseline,
            )
            for variant in scored:
                found.setdefault(variant, {})[dataset] = tested[variant]
    return found


def quality_drops(variant: str, by_dataset: dict[str, Comparison], limit: float) -> list[str]:
    """A drop below the fp32 baseline larger than ``select.max_quality_drop`` (flagged and excluded)."""
    return [
        f"quality drop {c.difference:.4f} vs {c.best} on {dataset} > select.max_quality_drop={limit:g}"
        for dataset, c in by_dataset.items()
        if dataset != MEAN and c.difference > limit
    ]


def _best(names: list[str], scores: dict[str, float]) -> str | None:
    return max(names, key=lambda name: scores[name]) if names else None


def _apply_rule(decision: Decision, selection: SelectionRun) -> None:
    if not decision.complete:
        decision.problem = "no candidate was scored on every dataset (see the failed runs)"
        return
    if not decision.eligible:
        excluded = "; ".join(f"{n}: {', '.join(decision.violations[n])}" for n in decision.complete)
        decision.problem = (
            f"no candidate meets the constraints ({excluded}); relax the select.max_*/min_* limits"
        )
        return
    mean = decision.comparisons[MEAN]
    best = max(decision.eligible, key=lambda n: decision.scores[n][MEAN])  # eligible is not empty here
    tied = [n for n in decision.eligible if n != best and mean[n].verdict == "tied"]
    winner = min([best, *tied], key=lambda n: decision.costs[n].sort_key())
    decision.best, decision.winner, decision.tied_with_best = best, winner, tied
    decision.reasons = _reasons(decision, winner, best, selection)


def _reasons(decision: Decision, winner: str, best: str, selection: SelectionRun) -> str:
    scores = decision.scores
    if winner == best:
        worse = [n for n in decision.eligible if n != best and decision.comparisons[MEAN][n].significant]
        parts = [f"best mean main score {scores[best][MEAN]:.4f} over {len(decision.datasets)} dataset(s)"]
        if worse:
            parts.append("significantly better than " + ", ".join(worse))
        if decision.tied_with_best:
            parts.append(f"tied with {', '.join(decision.tied_with_best)} and the cheapest of them")
        return "; ".join(parts)
    per_dataset = ", ".join(
        f"{d} (p={decision.comparisons[d][winner].p_adjusted:.2f})"
        for d in decision.datasets
        if winner in decision.comparisons[d]
    )
    speed = _ratio(decision.costs[winner].speed, decision.costs[best].speed)
    text = f"tied with {best} on {per_dataset}"
    text += f"; mean {scores[winner][MEAN]:.4f} vs {scores[best][MEAN]:.4f}"
    text += f" (p={decision.comparisons[MEAN][winner].p_adjusted:.2f})"
    if speed is not None:
        text += f", {speed:.1f}x faster"
    cost_w, cost_b = decision.costs[winner].cost_usd, decision.costs[best].cost_usd
    if not math.isnan(cost_b) and cost_b > (0.0 if math.isnan(cost_w) else cost_w):
        text += f", ${cost_b:.4f} -> ${0.0 if math.isnan(cost_w) else cost_w:.4f}"
    return text


def _ratio(a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return None
    return a / b


def fastest(decision: Decision) -> tuple[str, float | None, str | None] | None:
    """(fastest candidate, its throughput ratio over the next fastest, that candidate), among the
    candidates whose speed is in the most common unit (a texts/s and an images/s never compare)."""
    measured = {n: c for n, c in decision.costs.items() if not math.isnan(c.speed)}
    if not measured:
        return None
    units = [c.speed_unit for c in measured.values()]
    unit = max(units, key=units.count)
    speeds = {n: c.speed for n, c in measured.items() if c.speed_unit == unit}
    ranked = sorted(speeds, key=lambda n: speeds[n], reverse=True)
    if len(ranked) == 1:
        return ranked[0], None, None
    return ranked[0], _ratio(speeds[ranked[0]], speeds[ranked[1]]), ranked[1]
