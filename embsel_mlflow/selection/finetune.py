"""``select.finetune_top_k``: which candidates to fine-tune, what to refuse before any work, and the
names of the tuned candidates.

Plain library code. The training itself is ``embsel train``'s (``entrypoints.train.train_in_run``),
which the select entry point runs in one child run per (candidate, dataset); each tuned model then
joins the final ranking as a ``from_run`` candidate (``selection.add_candidates``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import ModelKind, TaskType
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.selection.decision import MEAN
from embsel_mlflow.selection.efficiency import uncached
from embsel_mlflow.selection.measurement_cache import measure_now

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import DataConfig, EfficiencyConfig, TrainConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.selection import Selection
    from embsel_mlflow.selection.efficiency import Efficiency
    from embsel_mlflow.selection.measurement_cache import Provenance

log = logging.getLogger("embsel.select")

# What train_in_run can fine-tune: models with transformer weights (a from_run model is one too).
FINETUNABLE_KINDS = (ModelKind.sentence_transformers, ModelKind.transformers, ModelKind.from_run)
SUFFIX = "finetuned"


@dataclass
class FineTune:
    """One fine-tune of a zero-shot candidate on one dataset's train split (a child ``train`` run)."""

    candidate: str
    dataset: str
    tuned: str  # the tuned model's candidate name in the final ranking
    run_id: str | None = None
    error: str | None = None  # the one-line reason the fine-tune failed


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


def check_finetune(top_k: int, datasets: Mapping[str, DataConfig], train: TrainConfig) -> None:
    """Refuse, before anything is evaluated or trained, what would make every fine-tune fail."""
    from embsel_mlflow.training.checks import check_sampler_name
    from embsel_mlflow.training.losses import check_loss_fits
    from embsel_mlflow.training.pairs import TASK_PAIRS, TrainPairs

    if top_k < 0:
        raise ConfigError(f"select.finetune_top_k must be >= 0 (0 = no fine-tuning), got {top_k}")
    if top_k == 0:
        return
    if train.resume:
        raise ConfigError(
            "train.resume continues one `embsel train` run; select.finetune_top_k starts new ones: "
            "drop train.resume"
        )
    if not train.log_model:
        raise ConfigError(
            "select.finetune_top_k ranks each tuned model as logged in its run: set train.log_model=true"
        )
    check_sampler_name(train.batch_sampler)
    for name, data in datasets.items():
        task = TaskType(data.task)
        if data.train_split not in data.splits:
            raise ConfigError(
                f"select.finetune_top_k: dataset '{name}' has no '{data.train_split}' split to fine-tune "
                f"on (splits: {', '.join(sorted(data.splits))}); add data.splits.{data.train_split} to "
                f"its config, point datasets.{name}.train_split at another split, or drop the dataset"
            )
        kind = TASK_PAIRS.get(task)
        if kind is None:
            raise ConfigError(
                f"select.finetune_top_k: dataset '{name}' ({task.value}) has no training pairs; "
                "fine-tune on retrieval, STS, pair classification or classification datasets"
            )
        # the loss must fit every dataset's pairs (checked on their kind: no data is loaded yet)
        check_loss_fits(train.loss, TrainPairs(kind, {}, f"{name}/{data.train_split} ({task.value})"))


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
    if info.kind not in FINETUNABLE_KINDS:
        return f"kind {info.kind}; only transformer candidates can be fine-tuned"
    baseline = selection.run.baselines.get(name, name)
    if baseline != name:
        return f"a variant of {baseline}; the fp32 model is the one fine-tuned"
    if decision.violations[name]:
        violations = "; ".join(decision.violations[name])
        return f"fails the constraints ({violations}); fine-tuning does not make it cheaper"
    return None
