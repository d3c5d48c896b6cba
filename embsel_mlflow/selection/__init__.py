"""Choosing a model: evaluate candidates on datasets, then decide with CIs, paired tests and cost.

Plain library code (no Hydra, no MLflow)::

    from embsel_mlflow.selection import select_models
    selection = select_models({"minilm": minilm_cfg, "lsa": lsa_cfg}, {"stsb": stsb_cfg}, SelectConfig())
    print(selection.summary())

``embsel select`` runs the same function with a tracker that opens one nested MLflow run per
(candidate, dataset) pair and a trainer for ``select.finetune_top_k``; the ``Selection`` it gets
back is complete (pairs, fine-tunes, decision, leaderboard, the champion to register) and the job
logs it in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from embsel_mlflow.selection.result import (
    Champion,
    Selection,
    add_candidates,
    choose_champion,
    conclude,
    variant_lines,
)

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, EvaluationConfig, ModelConfig, SelectConfig
    from embsel_mlflow.selection.finetune import FineTuner
    from embsel_mlflow.selection.measurement_cache import MeasurementCache
    from embsel_mlflow.selection.runner import PairTracker

__all__ = ["Champion", "Selection", "add_candidates", "choose_champion", "conclude", "select_models"]
__all__ += ["variant_lines"]


def select_models(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig | None = None,
    evaluation: EvaluationConfig | None = None,
    *,
    tracker: PairTracker | None = None,
    load_model: Callable[[ModelConfig], Any] | None = None,
    measurements: MeasurementCache | None = None,
    finetune: FineTuner | None = None,
    on_zero_shot: Callable[[Selection], None] | None = None,
) -> Selection:
    """Evaluate each candidate on each dataset, then rank them, recommend one and choose the champion.

    ``measurements`` keeps efficiency measurements for reuse (see ``measurement_cache``). With
    ``cfg.finetune_top_k`` and ``finetune`` (see ``selection.finetune.FineTuner``), the K best are
    fine-tuned and ranked again with the others; ``on_zero_shot`` sees the zero-shot selection
    before the first fine-tune starts.
    """
    from embsel_mlflow.config import EvaluationConfig, SelectConfig
    from embsel_mlflow.selection.executor import run_pairs
    from embsel_mlflow.selection.statistics import CORRECTIONS

    cfg = cfg or SelectConfig()
    evaluation = evaluation or EvaluationConfig()
    _check(cfg, CORRECTIONS)
    from embsel_mlflow.candidates import get_kind
    from embsel_mlflow.models.variants import expand_variants

    # select.variants: each transformer candidate becomes its fp32 baseline plus named variants
    # a kind says whether it has variants (transformer kinds: precision, backend, stored formats)
    candidates, baselines = expand_variants(
        candidates, cfg.variants, has_variants=lambda c: get_kind(c.kind).has_variants
    )
    run = run_pairs(
        candidates,
        datasets,
        cfg,
        evaluation,
        tracker=tracker,
        load_model=load_model,
        measurements=measurements,
    )
    run.baselines = baselines
    selection = conclude(run, cfg)
    if cfg.finetune_top_k and finetune is not None:
        from embsel_mlflow.selection.finetune import finetune_top_k

        if on_zero_shot is not None:
            on_zero_shot(selection)
        scoring = {"tracker": tracker, "load_model": load_model, "measurements": measurements}
        selection = finetune_top_k(selection, datasets, cfg, evaluation, finetune, **scoring)
    choose_champion(selection, cfg)
    return selection


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
    if cfg.max_quality_drop < 0:
        raise ConfigError(f"select.max_quality_drop must be >= 0, got {cfg.max_quality_drop}")
    if cfg.efficiency.sample_size < 1 or cfg.efficiency.latency_queries < 1:
        raise ConfigError("select.efficiency.sample_size and latency_queries must be >= 1")
