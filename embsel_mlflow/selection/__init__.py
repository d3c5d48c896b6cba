"""Choosing a model: evaluate candidates on datasets, then decide with CIs, paired tests and cost.

Plain library code (no Hydra, no MLflow)::

    from embsel_mlflow.selection import select_models
    selection = select_models({"minilm": minilm_cfg, "lsa": lsa_cfg}, {"stsb": stsb_cfg}, SelectConfig())
    print(selection.summary())

``embsel select`` runs the same function with a tracker that opens one nested MLflow run per
(candidate, dataset) pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config.schema import DataConfig, EvaluationConfig, ModelConfig, SelectConfig
    from embsel_mlflow.selection.decision import Decision
    from embsel_mlflow.selection.measurement_cache import MeasurementCache
    from embsel_mlflow.selection.runner import PairTracker, SelectionRun


@dataclass
class Selection:
    """The outcome of a selection: every pair, the decision and the leaderboard."""

    run: SelectionRun
    decision: Decision
    leaderboard: pd.DataFrame
    markdown: str

    @property
    def failures(self) -> list[str]:
        """One line per failed (candidate, dataset) pair."""
        return [f"{o.candidate}@{o.dataset}: {o.error}" for o in self.run.failed]

    def summary(self) -> str:
        """What the terminal shows: the leaderboard, the recommendation, speed, failures."""
        from embsel_mlflow.selection.decision import fastest

        lines = [self.markdown.rstrip(), "", f"recommendation: {self.decision.recommendation}"]
        quickest = fastest(self.decision)
        if quickest is not None:
            name, ratio, runner_up = quickest
            speed = self.decision.costs[name].texts_per_second
            text = f"fastest: {name} ({speed:,.0f} texts/s)"
            if ratio is not None:
                text += f", {ratio:.1f}x the next fastest ({runner_up})"
            lines.append(text)
        if self.failures:
            lines.append(f"failed ({len(self.failures)}): " + "; ".join(self.failures))
        return "\n".join(lines)


def select_models(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig | None = None,
    evaluation: EvaluationConfig | None = None,
    *,
    tracker: PairTracker | None = None,
    load_model: Callable[[ModelConfig], Any] | None = None,
    measurements: MeasurementCache | None = None,
) -> Selection:
    """Evaluate each candidate on each dataset, then rank them and recommend one.

    ``measurements`` keeps efficiency measurements for reuse (see ``measurement_cache``).
    """
    from embsel_mlflow.config.schema import EvaluationConfig, SelectConfig
    from embsel_mlflow.selection.decision import decide
    from embsel_mlflow.selection.leaderboard import leaderboard_frame, leaderboard_markdown
    from embsel_mlflow.selection.runner import run_selection
    from embsel_mlflow.selection.statistics import CORRECTIONS

    cfg = cfg or SelectConfig()
    evaluation = evaluation or EvaluationConfig()
    _check(cfg, CORRECTIONS)
    run = run_selection(
        candidates,
        datasets,
        cfg,
        evaluation,
        tracker=tracker,
        load_model=load_model,
        measurements=measurements,
    )
    decision = decide(run, cfg)
    frame = leaderboard_frame(run, decision)
    return Selection(run, decision, frame, leaderboard_markdown(frame, decision.datasets))


def _check(cfg: SelectConfig, corrections: tuple[str, ...]) -> None:
    from embsel_mlflow.errors import ConfigError

    if cfg.resamples < 100:
        raise ConfigError(f"select.resamples must be >= 100 for a usable bootstrap, got {cfg.resamples}")
    if not 0 < cfg.confidence < 1:
        raise ConfigError(f"select.confidence must be between 0 and 1, got {cfg.confidence}")
    if not 0 < cfg.alpha < 1:
        raise ConfigError(f"select.alpha must be between 0 and 1, got {cfg.alpha}")
    if cfg.correction not in corrections:
        raise ConfigError(
            f"select.correction must be one of {', '.join(corrections)}, got '{cfg.correction}'"
        )
    if cfg.efficiency.sample_size < 1 or cfg.efficiency.latency_queries < 1:
        raise ConfigError("select.efficiency.sample_size and latency_queries must be >= 1")
