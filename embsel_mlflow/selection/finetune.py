"""``select.finetune_top_k``: which candidates to fine-tune, the names and configs of the tuned
candidates, and their ranking with the others.

Plain library code. The training itself is a callable the caller passes (``embsel select`` passes
``embsel train``'s ``jobs.train.train_in_run`` in one child run per (candidate, dataset); what must
be refused before any work is ``training.checks.check_finetune``); each tuned model then joins
the final ranking as a ``from_run`` candidate (``selection.add_candidates``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.candidates import get_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.selection.decision import MEAN
from embsel_mlflow.selection.efficiency import uncached
from embsel_mlflow.selection.measurement_cache import measure_now
from embsel_mlflow.selection.runner import FineTune

if TYPE_CHECKING:
    from embsel_mlflow.config import (
        DataConfig,
        EfficiencyConfig,
        EvaluationConfig,
        ModelConfig,
        SelectConfig,
    )
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.selection.efficiency import Efficiency
    from embsel_mlflow.selection.measurement_cache import Provenance
    from embsel_mlflow.selection.result import Selection

log = logging.getLogger("embsel.select")

# What train_in_run can fine-tune: models with transformer weights (a from_run model is one too).
SUFFIX = "finetuned"
# Trains ``model`` on ``data``'s train split and logs the tuned model in a run: sets the FineTune's
# run_id, and its error (one line) when the training fails.
FineTuner = Callable[[FineTune, "ModelConfig", "DataConfig"], None]
__all__ = ["SUFFIX", "BaseEfficiency", "FineTune", "FineTuner", "finetune_choices", "finetune_top_k"]
__all__ += ["tuned_config", "tuned_name"]


@dataclass
class BaseEfficiency:
    """The efficiency of tuned candidates: their base's on each dataset, not timed again.

    Fine-tuning changes the weights, not the architecture, size or dtype, so a tuned model costs
    what its base costs. Timing it again minutes later, after training, on a machine whose load
    has changed would turn noise into the decision's tie-break ("4x faster" than its own base).
    """

    measured: dict[tuple[str, str], tuple[Efficiency, Provenance]]  # (train run id, data name) -> base's

    @classmethod
    def of(cls, selection: Selection, datasets: Mapping[str, DataConfig]) -> BaseEfficiency:
        measured = {}
        for finetune in selection.run.finetunes:
            for option, data in datasets.items():
                outcome = selection.run.outcome(finetune.candidate, option)
                if finetune.run_id and outcome.efficiency and outcome.efficiency_provenance:
                    measured[finetune.run_id, data.name] = (outcome.efficiency, outcome.efficiency_provenance)
        return cls(measured)

    def measure(
        self, model: Any, data: TaskData, cfg: EfficiencyConfig, *, billed_tokens: int | None = None
    ) -> tuple[Efficiency, Provenance]:
        run_id = getattr(getattr(uncached(model), "config", None), "run_id", None)
        found = self.measured.get((str(run_id), data.name))
        if found is None:  # not a tuned model of this selection: time it
            return measure_now(model, data, cfg, billed_tokens=billed_tokens)
        log.info("efficiency of the tuned model on %s: its base candidate's (same architecture)", data.name)
        return found


def tuned_name(candidate: str, dataset: str, *, several_datasets: bool) -> str:
    """``minilm/finetuned``; with several datasets one model per dataset: ``minilm/finetuned-scifact``."""
    return f"{candidate}/{SUFFIX}-{dataset}" if several_datasets else f"{candidate}/{SUFFIX}"


def tuned_config(base: ModelConfig, run_id: str | None) -> ModelConfig:
    """A tuned model as a ``from_run`` candidate: the base's prompts, normalisation and batching, the
    weights that run ``run_id`` logged."""
    import dataclasses

    return dataclasses.replace(
        base,
        name=f"{base.name}-{SUFFIX}",
        name_or_path=ModelKind.from_run.value,
        kind=ModelKind.from_run,
        run_id=run_id,
        offline=None,
        revision=None,
        token=None,
    )


def finetune_top_k(
    selection: Selection,
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig,
    evaluation: EvaluationConfig,
    train: FineTuner,
    **scoring: Any,
) -> Selection:
    """``select.finetune_top_k``: ``train`` the K best candidates on each dataset's train split, then
    rank the tuned models with the others (``scoring``: ``run_selection``'s tracker and loader)."""
    from embsel_mlflow.selection.result import add_candidates

    several = len(datasets) > 1
    tuned: dict[str, ModelConfig] = {}
    for name in finetune_choices(selection, cfg.finetune_top_k):
        base = selection.run.candidates[name].config
        for data_name, data in datasets.items():
            finetune = FineTune(name, data_name, tuned_name(name, data_name, several_datasets=several))
            selection.run.finetunes.append(finetune)
            train(finetune, base, data)
            if finetune.error is None:
                tuned[finetune.tuned] = tuned_config(base, finetune.run_id)
    if not tuned:
        return selection
    # a tuned model costs what its base costs: its base's efficiency, not a second timing
    scoring = {**scoring, "measurements": BaseEfficiency.of(selection, datasets)}
    return add_candidates(selection, tuned, datasets, cfg, evaluation, **scoring)


def finetune_choices(selection: Selection, top_k: int) -> list[str]:
    """The ``top_k`` best fine-tunable candidates by zero-shot mean main score; each skip is logged."""
    decision = selection.decision
    ranked = sorted(decision.complete, key=lambda name: decision.scores[name][MEAN], reverse=True)
    unranked = [name for name in selection.run.candidates if name not in decision.complete]
    chosen: list[str] = []
    for name in [*ranked, *unranked]:
        if len(chosen) == top_k:
            break
        reason = _not_finetunable(name, selection)
        if reason:
            log.info("select.finetune_top_k: not fine-tuning '%s': %s", name, reason)
        else:
            chosen.append(name)
    if len(chosen) < top_k:
        log.info(
            "select.finetune_top_k=%d, but %d candidate(s) can be fine-tuned: training all of them (%s)",
            top_k,
            len(chosen),
            ", ".join(chosen) or "none",
        )
    return chosen


def _not_finetunable(name: str, selection: Selection) -> str | None:
    info, decision = selection.run.candidates[name], selection.decision
    if name not in decision.complete:
        return "not scored on every dataset"
    if not get_kind(info.kind).trainable:
        return f"kind {info.kind}; only transformer candidates can be fine-tuned"
    baseline = selection.run.baselines.get(name, name)
    if baseline != name:
        return f"a variant of {baseline}; the fp32 model is the one fine-tuned"
    if decision.violations[name]:
        violations = "; ".join(decision.violations[name])
        return f"fails the constraints ({violations}); fine-tuning does not make it cheaper"
    return None
