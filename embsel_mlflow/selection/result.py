"""A selection's result: every pair and fine-tune, the decision, the leaderboard and the champion.

``conclude`` decides on the pairs evaluated so far; ``add_candidates`` ranks more candidates with
them (``select.finetune_top_k``'s tuned models); ``choose_champion`` picks the model to register.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import DataConfig, EvaluationConfig, ModelConfig, SelectConfig
    from embsel_mlflow.selection.decision import Decision
    from embsel_mlflow.selection.runner import SelectionRun


@dataclass
class Champion:
    """The winner to register (``select.register``): its loaded model and its config."""

    name: str
    model: Any
    config: Any  # the ModelConfig (a variant's own, with select.variants)


@dataclass
class Selection:
    """The outcome of a selection: every pair and fine-tune, the decision, the leaderboard and,
    with ``select.register``, the champion to register (or why it cannot be)."""

    run: SelectionRun
    decision: Decision
    leaderboard: pd.DataFrame
    markdown: str
    champion: Champion | None = None
    champion_problem: str | None = None

    @property
    def failures(self) -> list[str]:
        """One line per failed (candidate, dataset) pair."""
        return [f"{o.candidate}@{o.dataset}: {o.error}" for o in self.run.failed]

    @property
    def finetune_failures(self) -> list[str]:
        """One line per failed fine-tune (``select.finetune_top_k``)."""
        return [f"{f.candidate}@{f.dataset}: {f.error}" for f in self.run.finetunes if f.error]

    def summary(self) -> str:
        """What the terminal shows: the leaderboard, the recommendation, speed, failures."""
        from embsel_mlflow.selection.decision import fastest

        lines = [self.markdown.rstrip(), "", f"recommendation: {self.decision.recommendation}"]
        quickest = fastest(self.decision)
        if quickest is not None:
            name, ratio, runner_up = quickest
            cost = self.decision.costs[name]
            text = f"fastest: {name} ({cost.speed:,.0f} {cost.speed_unit})"
            if ratio is not None:
                text += f", {ratio:.1f}x the next fastest ({runner_up})"
            lines.append(text)
        lines += variant_lines(self.decision)
        if self.failures:
            lines.append(f"failed ({len(self.failures)}): " + "; ".join(self.failures))
        if self.finetune_failures:
            failed = self.finetune_failures
            lines.append(f"fine-tunes failed ({len(failed)}): " + "; ".join(failed))
        return "\n".join(lines)


def variant_lines(decision: Decision) -> list[str]:
    """Per variant: score as a share of its fp32 baseline per dataset, stored size, flags."""
    import math

    lines = []
    for variant, baseline in decision.baselines.items():
        parts = []
        for dataset in decision.datasets:
            score, base = decision.scores[variant].get(dataset), decision.scores[baseline].get(dataset)
            if score is None or base is None:
                continue
            share = f" = {100 * score / base:.1f}% of fp32" if variant != baseline and base else ""
            parts.append(f"{dataset} {score:.4f}{share}")
        cost = decision.costs[variant]
        if not math.isnan(cost.bytes_per_vector):
            per_million = cost.memory_per_million_docs_mb
            parts.append(f"{cost.bytes_per_vector:.0f} B/vector ({per_million:,.1f} MB per 1M docs)")
        if not math.isnan(cost.speed):
            parts.append(f"{cost.speed:,.0f} {cost.speed_unit}")
        drops = [v for v in decision.violations.get(variant, []) if v.startswith("quality drop")]
        if drops:
            parts.append("FLAGGED: " + "; ".join(drops))
        lines.append(f"  {variant}: " + ", ".join(parts))
    return ["variants (vs each candidate's fp32 variant):", *lines] if lines else []


def choose_champion(selection: Selection, cfg: SelectConfig) -> None:
    """``select.register``: the winner, kept loaded, as ``selection.champion``, else why it cannot be."""
    from embsel_mlflow.selection.champion import not_registrable

    name, winner = cfg.register, selection.decision.winner
    if not name or winner is None:
        return
    model = selection.run.kept_model(winner)  # kept loaded (or loadable) because select.register is set
    if model is None:
        kind = selection.run.candidates[winner].kind
        problem = not_registrable(winner, kind, datasets=len(selection.run.datasets))
        selection.champion_problem = f"could not register '{winner}' as {name}: {problem}"
        return
    selection.champion = Champion(winner, model, selection.run.candidates[winner].config)


def conclude(run: SelectionRun, cfg: SelectConfig) -> Selection:
    """The decision and the leaderboard of the pairs evaluated so far."""
    from embsel_mlflow.selection.decision import decide
    from embsel_mlflow.selection.leaderboard import leaderboard_frame, leaderboard_markdown

    decision = decide(run, cfg)
    frame = leaderboard_frame(run, decision)
    return Selection(run, decision, frame, leaderboard_markdown(frame, decision.datasets))


def add_candidates(
    selection: Selection,
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig,
    evaluation: EvaluationConfig,
    **scoring: Any,
) -> Selection:
    """``selection`` ranked again with more candidates (``select.finetune_top_k``'s tuned models).

    Only the new candidates are evaluated (``scoring``: ``run_selection``'s tracker, loader and
    measurements); the bootstrap resamples are seeded per dataset, so the earlier candidates keep
    their intervals and the paired tests cover every candidate.
    """
    from embsel_mlflow.selection.executor import run_pairs

    added = run_pairs(candidates, datasets, cfg, evaluation, **scoring)
    run = selection.run
    run.candidates.update(added.candidates)
    run.outcomes += added.outcomes
    run.kept_models.update(added.kept_models)
    run.loaders.update(added.loaders)
    return conclude(run, cfg)
