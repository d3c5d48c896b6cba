"""``embsel select``'s job: rank candidates on datasets; one parent MLflow run, one child per pair.

Each child logs exactly what ``embsel evaluate`` logs for its pair (``evaluate_in_run``, the
config through ``log_config``), plus its ``efficiency/*`` metrics. The parent holds the
decision: leaderboard (markdown, CSV, MLflow table), the quality-vs-throughput plot, the
recommendation (tag, run description, terminal) and, with ``select.register``, the champion.
With ``select.finetune_top_k=K`` the K best candidates are fine-tuned first, each in a child
``train`` run, and ranked again with the others as ``from_run`` candidates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import EvaluateJobConfig, SelectJobConfig, TrackingConfig
from embsel_mlflow.errors import ConfigError, EmbselError
from embsel_mlflow.jobs.evaluate import evaluate_in_run, scoring_job
from embsel_mlflow.jobs.run import child_run, job_run

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, ModelConfig, TrainConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.selection import Selection
    from embsel_mlflow.selection.runner import FineTune
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "select"
log = logging.getLogger("embsel.select")


class SelectionFailed(EmbselError):
    """Some pairs failed, or no candidate could be recommended (everything else was logged)."""


@dataclass
class ChildScope:
    run: RunLogger
    job: EvaluateJobConfig

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def evaluate(self, model: Any, data: TaskData) -> TaskResult:
        return evaluate_in_run(self.run, self.job, data, model)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self.run.log_metrics(metrics)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.run.set_tags(tags)


@dataclass
class ChildRunTracker:
    """One nested run per (candidate, dataset), configured as ``embsel evaluate`` would be."""

    parent_run_id: str
    job: SelectJobConfig
    overrides: list[str]

    @contextlib.contextmanager
    def pair(self, candidate: str, model: ModelConfig, data: DataConfig) -> Iterator[ChildScope]:
        pair_job = scoring_job(self.job, model=model, data=data)
        tags = {"embsel.model": model.name, "embsel.dataset": data.name, "embsel.candidate": candidate}
        with child_run(
            STEP,
            pair_job,
            self.overrides,
            run_name=f"{candidate}@{data.name}",
            parent_run_id=self.parent_run_id,
            tags={**tags, **_candidate_tags(candidate, model)},
        ) as run:
            yield ChildScope(run, pair_job)


def _candidate_tags(candidate: str, model: ModelConfig) -> dict[str, str]:
    """A from_run candidate (a tuned model) names its train run; a variant names its settings."""
    from embsel_mlflow.config import ModelKind
    from embsel_mlflow.models.variants import variant_name

    if model.kind == ModelKind.from_run:
        return {"embsel.model_run_id": str(model.run_id)}
    return {"embsel.variant": variant_name(model)} if "/" in candidate else {}


def select_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Compose -> evaluate every pair in child runs (and fine-tune the best) -> decide -> log it all.

    Returns the winner's mean main score: the objective of a sweep (``-m hydra/sweeper=optuna``).
    """
    from functools import partial

    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.selection import select_models
    from embsel_mlflow.selection.decision import MEAN
    from embsel_mlflow.selection.measurement_cache import MeasurementCache
    from embsel_mlflow.selection.runner import default_loader
    from embsel_mlflow.training.checks import check_finetune

    name = tracking.run_name or _run_name(cfg)
    with job_run(STEP, cfg, tracking, overrides, SelectJobConfig, run_name=name) as (parent, job):
        if not job.candidates:
            raise ConfigError("no candidates: choose model configs, e.g. candidates=[minilm,static_minilm]")
        if not job.datasets:
            raise ConfigError("no datasets: choose data configs, e.g. datasets=[stsb,scifact]")
        check_finetune(job.select.finetune_top_k, job.datasets, job.train)
        _refuse_misfits(job)
        if job.select.executor == "ray":
            job = _for_ray_tasks(job)
        cache = open_cache(job.cache)
        selection = select_models(
            job.candidates,
            job.datasets,
            job.select,
            job.evaluation,
            tracker=ChildRunTracker(parent.run_id, job, overrides),
            load_model=default_loader(
                cache, calibration_data=list(job.datasets.values()), tracking_uri=job.tracking.uri
            ),
            measurements=(
                MeasurementCache(cache.measurements_dir, reuse=job.select.efficiency.reuse)
                if cache is not None
                else None
            ),
            finetune=partial(_finetune, parent, job=job, overrides=overrides),
            # kept if training is interrupted
            on_zero_shot=lambda zero_shot: parent.log_text(zero_shot.markdown, "zero_shot/leaderboard.md"),
        )
        log_selection(parent, selection, job)
    winner = selection.decision.winner  # set: having none is one of the problems logged
    return float(selection.decision.scores[winner][MEAN]) if winner else float("nan")


def _for_ray_tasks(job: SelectJobConfig) -> SelectJobConfig:
    """``job`` as a Ray task on another node reads it: the store's URI and the cache's directory
    absolute (the task's working directory and environment are not this process's)."""
    import dataclasses

    from embsel_mlflow.models.cache import cache_dir
    from embsel_mlflow.tracking.store import resolve_tracking_uri

    tracking = dataclasses.replace(job.tracking, uri=resolve_tracking_uri(job.tracking.uri))
    cache = dataclasses.replace(job.cache, dir=str(cache_dir(job.cache).resolve()))
    return dataclasses.replace(job, tracking=tracking, cache=cache)


def _refuse_misfits(job: SelectJobConfig) -> None:
    """Before any candidate loads: each must embed what each dataset's task embeds (the modality
    guard's kind check, one line naming the kinds that fit); a text model on digits is no ranking."""
    from embsel_mlflow.jobs.evaluate import guard_context
    from embsel_mlflow.profiling.modality import refuse_candidate

    context = guard_context(job)
    for model in job.candidates.values():
        for data in job.datasets.values():
            refuse_candidate(model, data.task, context)


def log_selection(parent: RunLogger, selection: Selection, job: SelectJobConfig) -> None:
    """The whole selection in the parent run: the decision, the champion, the summary; its problems
    end the run FAILED (``SelectionFailed``) with everything else logged."""
    log_decision(parent, selection, job)
    problems = _register(parent, selection, job)
    selection.run.kept_models.clear()
    print(selection.summary())
    print(f"(parent run {parent.run_id})")
    problems += _problems(selection)
    if problems:
        parent.set_tags({"embsel.failed": "; ".join(problems)})
        raise SelectionFailed("; ".join(problems))


def _finetune(
    parent: RunLogger,
    finetune: FineTune,
    model: ModelConfig,
    data: DataConfig,
    *,
    job: SelectJobConfig,
    overrides: list[str],
) -> None:
    """One fine-tune as a child ``train`` run; a failure is recorded there and in ``finetune``."""
    from embsel_mlflow.config import TrainJobConfig
    from embsel_mlflow.jobs import train
    from embsel_mlflow.tracking.run import one_line

    train_job = TrainJobConfig(
        model=model,
        data=data,
        train=_finetune_settings(job, parent.run_id),
        tracking=job.tracking,
        evaluation=job.evaluation,
        cache=job.cache,
        profile=job.profile,
    )
    tags = {
        "embsel.model": model.name,
        "embsel.dataset": data.name,
        "embsel.finetune_of": finetune.candidate,  # a fine-tune, not a scored pair
        "embsel.finetuned_candidate": finetune.tuned,
    }
    log.info("fine-tuning '%s' on '%s' (select.finetune_top_k)", finetune.candidate, finetune.dataset)
    try:
        with child_run(
            train.STEP,
            train_job,
            overrides,
            run_name=f"finetune {finetune.candidate}@{finetune.dataset}",
            parent_run_id=parent.run_id,
            tags=tags,
        ) as run:
            finetune.run_id = run.run_id
            train.train_in_run(run, train_job)
    except EmbselError as exc:  # the child is FAILED with the reason; the other fine-tunes go on
        finetune.error = one_line(exc)
        log.error("fine-tuning %s on %s failed: %s", finetune.candidate, finetune.dataset, exc)


def _finetune_settings(job: SelectJobConfig, parent_run_id: str) -> TrainConfig:
    """``job.train``, checkpointing each fine-tune in a folder of its own (``<dir>/<child run id>``)."""
    import dataclasses
    from pathlib import Path

    from embsel_mlflow.jobs.app import app_output_dir

    if job.train.output_dir:
        return job.train
    base = app_output_dir() or Path("outputs", STEP, parent_run_id).resolve()
    return dataclasses.replace(job.train, output_dir=str(base / "finetune"))


def _run_name(cfg: Any) -> str:
    from omegaconf import OmegaConf

    candidates = list(OmegaConf.select(cfg, "candidates", default={}) or {})
    return f"select {len(candidates)} candidate(s)"


def _problems(selection: Selection) -> list[str]:
    problems = []
    if selection.failures:
        problems.append(f"{len(selection.failures)} pair(s) failed: " + "; ".join(selection.failures))
    if selection.finetune_failures:
        failed = selection.finetune_failures
        problems.append(f"{len(failed)} fine-tune(s) failed: " + "; ".join(failed))
    if selection.decision.winner is None:
        problems.append(selection.decision.problem or "no recommendation")
    return problems


def log_decision(parent: RunLogger, selection: Selection, job: SelectJobConfig) -> None:
    """Leaderboard artifacts and table, plot, metrics, recommendation tag and run description."""
    import math

    from embsel_mlflow.selection.decision import MEAN
    from embsel_mlflow.selection.plot import quality_throughput_figure

    decision = selection.decision
    parent.log_text(selection.markdown, "leaderboard.md")
    parent.log_text(selection.leaderboard.to_csv(index=False), "leaderboard.csv")
    parent.log_table(selection.leaderboard, "leaderboard.json")
    figure = quality_throughput_figure(decision, job.select)
    if figure is not None:
        parent.log_figure(figure, "plots/quality_vs_throughput.png")
    comparisons = {
        dataset: {name: vars(c) for name, c in by_candidate.items()}
        for dataset, by_candidate in decision.comparisons.items()
    }
    parent.log_dict(
        {
            "winner": decision.winner,
            "best": decision.best,
            "tied_with_best": decision.tied_with_best,
            "recommendation": decision.recommendation,
            "comparisons": comparisons,
            "violations": decision.violations,
            "children": {f"{o.candidate}@{o.dataset}": o.run_id for o in selection.run.outcomes},
            "finetunes": [vars(f) for f in selection.run.finetunes],
        },
        "decision.json",
    )
    metrics = {
        f"{name}/{dataset}": score
        for name, by_dataset in decision.scores.items()
        for dataset, score in by_dataset.items()
    }
    if decision.winner:
        metrics["winner_mean_main_score"] = decision.scores[decision.winner][MEAN]
    parent.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})
    failed = [f"{o.candidate}@{o.dataset}" for o in selection.run.failed]
    parent.set_tags(
        {
            "embsel.recommendation": decision.recommendation,
            "embsel.winner": decision.winner or "",
            "embsel.candidates": ",".join(selection.run.candidates),
            "embsel.datasets": ",".join(decision.datasets),
            # only where some pair failed: an empty tag reads as a problem in the UI
            **({"embsel.failed_children": ",".join(failed)} if failed else {}),
            "mlflow.note.content": _description(selection),
        }
    )


def _description(selection: Selection) -> str:
    """The parent's description (markdown in the UI): the decision, failures, variants, and the
    leaderboard with each score and CI in a code span, so that "[low, high] (best)" is no link."""
    from embsel_mlflow.selection import variant_lines
    from embsel_mlflow.selection.leaderboard import leaderboard_markdown

    text = f"**Recommendation:** {selection.decision.recommendation}\n\n"
    failures = selection.failures + [f"fine-tune {line}" for line in selection.finetune_failures]
    if failures:
        text += "**Failed:** " + "; ".join(failures) + "\n\n"
    variants = variant_lines(selection.decision)
    if variants:
        text += "\n".join(variants) + "\n\n"
    return text + leaderboard_markdown(selection.leaderboard, selection.decision.datasets, code_spans=True)


def _register(parent: RunLogger, selection: Selection, job: SelectJobConfig) -> list[str]:
    """Register the champion the selection chose (``select.register``); the problem, if any."""
    if selection.champion_problem:
        return [selection.champion_problem]
    champion, name = selection.champion, job.select.register
    if champion is None or not name:
        return []
    from embsel_mlflow.selection.champion import register_champion

    alias = job.select.champion_alias
    try:
        version = register_champion(
            parent.client, parent.run_id, champion.model, champion.name, name, alias, cfg=champion.config
        )
    except EmbselError as exc:
        return [f"could not register '{champion.name}' as {name}: {exc}"]
    parent.set_tags({"embsel.registered_model": f"models:/{name}@{alias}"})
    parent.set_tags({"embsel.registered_version": version})
    print(f"registered {champion.name} as models:/{name}@{alias} (version {version})")
    return []
