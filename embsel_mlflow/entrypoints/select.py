"""``embsel select``: rank candidates on datasets; one parent MLflow run, one child per pair.

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
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import EvaluateJobConfig, SelectJobConfig, TrackingConfig
from embsel_mlflow.entrypoints.evaluate import evaluate_in_run
from embsel_mlflow.entrypoints.hydra_app import EXIT_BAD_INPUT, run_app, to_job_config
from embsel_mlflow.errors import ConfigError, EmbselError

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import DataConfig, ModelConfig, TrainConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.selection import Selection
    from embsel_mlflow.selection.finetune import FineTune
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
        from omegaconf import OmegaConf

        from embsel_mlflow.tracking.config_logging import log_config
        from embsel_mlflow.tracking.run import tracked_run
        from embsel_mlflow.tracking.system_tags import version_tags

        pair_job = _evaluate_job(self.job, model, data)
        tracking = self.job.tracking
        with tracked_run(
            tracking,
            entry_point=STEP,
            run_name=f"{candidate}@{data.name}",
            parent_run_id=self.parent_run_id,
        ) as run:
            run.set_tags(
                {
                    "embsel.model": model.name,
                    "embsel.dataset": data.name,
                    "embsel.candidate": candidate,
                    **_candidate_tags(candidate, model),
                    **version_tags(),
                }
            )
            log_config(run, OmegaConf.structured(pair_job), self.overrides)
            yield ChildScope(run, pair_job)


def _candidate_tags(candidate: str, model: ModelConfig) -> dict[str, str]:
    """A from_run candidate (a tuned model) names its train run; a variant names its settings."""
    from embsel_mlflow.config.schema import ModelKind
    from embsel_mlflow.models.variants import variant_name

    if model.kind == ModelKind.from_run:
        return {"embsel.model_run_id": str(model.run_id)}
    return {"embsel.variant": variant_name(model)} if "/" in candidate else {}


def _evaluate_job(job: SelectJobConfig, model: ModelConfig, data: DataConfig) -> EvaluateJobConfig:
    """The ``embsel evaluate`` config of one pair: the selection's evaluation, tracking and cache."""
    return EvaluateJobConfig(
        model=model,
        data=data,
        tracking=job.tracking,
        evaluation=job.evaluation,
        cache=job.cache,
        profile=job.profile,
    )


def select_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Compose -> evaluate every pair in child runs -> decide -> log the decision in the parent.

    Returns the winner's mean main score: the objective of a sweep (``-m hydra/sweeper=optuna``).
    """
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.selection import select_models
    from embsel_mlflow.selection.decision import MEAN
    from embsel_mlflow.selection.finetune import check_finetune
    from embsel_mlflow.selection.measurement_cache import MeasurementCache
    from embsel_mlflow.selection.runner import default_loader
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    with tracked_run(tracking, entry_point=STEP, run_name=tracking.run_name or _run_name(cfg)) as parent:
        parent.set_tags(version_tags())
        log_config(parent, cfg, overrides)
        job = to_job_config(cfg, SelectJobConfig, STEP)
        if not job.candidates:
            raise ConfigError("no candidates: choose model configs, e.g. candidates=[minilm,static_minilm]")
        if not job.datasets:
            raise ConfigError("no datasets: choose data configs, e.g. datasets=[stsb,scifact]")
        check_finetune(job.select.finetune_top_k, job.datasets, job.train)
        cache = open_cache(job.cache)
        scoring: dict[str, Any] = {  # how every candidate is evaluated, the tuned ones included
            "tracker": ChildRunTracker(parent.run_id, job, overrides),
            "load_model": default_loader(
                cache, calibration_data=list(job.datasets.values()), tracking_uri=job.tracking.uri
            ),
            "measurements": (
                MeasurementCache(cache.measurements_dir, reuse=job.select.efficiency.reuse)
                if cache is not None
                else None
            ),
        }
        selection = select_models(job.candidates, job.datasets, job.select, job.evaluation, **scoring)
        if job.select.finetune_top_k:
            selection = finetune_top_k(parent, selection, job, overrides, **scoring)
        log_decision(parent, selection, job)
        problems = _register(parent, selection, job)
        selection.run.kept_models.clear()
        print(selection.summary())
        print(f"(parent run {parent.run_id})")
        problems += _problems(selection)
        if problems:
            parent.set_tags({"embsel.failed": "; ".join(problems)})
            raise SelectionFailed("; ".join(problems))
    winner = selection.decision.winner  # set: having none is one of the problems above
    return float(selection.decision.scores[winner][MEAN]) if winner else float("nan")


def finetune_top_k(
    parent: RunLogger, selection: Selection, job: SelectJobConfig, overrides: list[str], **scoring: Any
) -> Selection:
    """``select.finetune_top_k``: fine-tune the K best candidates on each dataset's train split, each
    in a child ``train`` run (``embsel train``'s code), then rank the tuned models with the others."""
    import dataclasses

    from embsel_mlflow.config.schema import ModelKind
    from embsel_mlflow.selection import add_candidates
    from embsel_mlflow.selection.finetune import (
        SUFFIX,
        BaseEfficiency,
        FineTune,
        finetune_choices,
        tuned_name,
    )

    parent.log_text(selection.markdown, "zero_shot/leaderboard.md")  # kept if training is interrupted
    several = len(job.datasets) > 1
    tuned: dict[str, ModelConfig] = {}
    for name in finetune_choices(selection, job.select.finetune_top_k):
        base = selection.run.candidates[name].config
        for data_name, data in job.datasets.items():
            finetune = FineTune(name, data_name, tuned_name(name, data_name, several_datasets=several))
            selection.run.finetunes.append(finetune)
            _finetune(parent, finetune, base, data, job, overrides)
            if finetune.error is None:
                # the base's prompts, normalisation and batching; the weights the child run logged
                tuned[finetune.tuned] = dataclasses.replace(
                    base,
                    name=f"{base.name}-{SUFFIX}",
                    name_or_path=ModelKind.from_run.value,
                    kind=ModelKind.from_run,
                    run_id=finetune.run_id,
                    offline=None,
                    revision=None,
                    token=None,
                )
    if not tuned:
        return selection
    # a tuned model costs what its base costs: its base's efficiency, not a second timing
    scoring = {**scoring, "measurements": BaseEfficiency.of(selection, job.datasets)}
    return add_candidates(selection, tuned, job.datasets, job.select, job.evaluation, **scoring)


def _finetune(
    parent: RunLogger,
    finetune: FineTune,
    model: ModelConfig,
    data: DataConfig,
    job: SelectJobConfig,
    overrides: list[str],
) -> None:
    """One fine-tune as a child ``train`` run; a failure is recorded there and in ``finetune``."""
    from omegaconf import OmegaConf

    from embsel_mlflow.config.schema import TrainJobConfig
    from embsel_mlflow.entrypoints import train
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import one_line, tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    train_job = TrainJobConfig(
        model=model,
        data=data,
        train=_finetune_settings(job, parent.run_id),
        tracking=job.tracking,
        evaluation=job.evaluation,
        cache=job.cache,
        profile=job.profile,
    )
    log.info("fine-tuning '%s' on '%s' (select.finetune_top_k)", finetune.candidate, finetune.dataset)
    try:
        with tracked_run(
            job.tracking,
            entry_point=train.STEP,
            run_name=f"finetune {finetune.candidate}@{finetune.dataset}",
            parent_run_id=parent.run_id,
        ) as run:
            finetune.run_id = run.run_id
            run.set_tags(
                {
                    "embsel.model": model.name,
                    "embsel.dataset": data.name,
                    "embsel.finetune_of": finetune.candidate,  # a fine-tune, not a scored pair
                    "embsel.finetuned_candidate": finetune.tuned,
                    **version_tags(),
                }
            )
            log_config(run, OmegaConf.structured(train_job), overrides)
            train.train_in_run(run, train_job)
    except EmbselError as exc:  # the child is FAILED with the reason; the other fine-tunes go on
        finetune.error = one_line(exc)
        log.error("fine-tuning %s on %s failed: %s", finetune.candidate, finetune.dataset, exc)


def _finetune_settings(job: SelectJobConfig, parent_run_id: str) -> TrainConfig:
    """``job.train``, checkpointing each fine-tune in a folder of its own (``<dir>/<child run id>``)."""
    import dataclasses
    from pathlib import Path

    from embsel_mlflow.entrypoints.hydra_app import app_output_dir

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
            "embsel.failed_children": ",".join(failed),
            "mlflow.note.content": _description(selection),
        }
    )


def _description(selection: Selection) -> str:
    from embsel_mlflow.selection import variant_lines

    text = f"**Recommendation:** {selection.decision.recommendation}\n\n"
    failures = selection.failures + [f"fine-tune {line}" for line in selection.finetune_failures]
    if failures:
        text += "**Failed:** " + "; ".join(failures) + "\n\n"
    variants = variant_lines(selection.decision)
    if variants:
        text += "\n".join(variants) + "\n\n"
    return text + selection.markdown


def _register(parent: RunLogger, selection: Selection, job: SelectJobConfig) -> list[str]:
    """Register the winner when ``select.register`` names a model; the problem, if any."""
    name = job.select.register
    winner = selection.decision.winner
    if not name or winner is None:
        return []
    from embsel_mlflow.selection.champion import not_registrable, register_champion

    try:
        model = selection.run.kept_models.get(winner)  # kept loaded because select.register is set
        if model is None:
            raise not_registrable(winner, f"kind {selection.run.candidates[winner].kind}")
        cfg = selection.run.candidates[winner].config  # a variant's own config (select.variants)
        version = register_champion(
            parent.client, parent.run_id, model, winner, name, job.select.champion_alias, cfg=cfg
        )
    except EmbselError as exc:
        return [f"could not register '{winner}' as {name}: {exc}"]
    parent.set_tags({"embsel.registered_model": f"models:/{name}@{job.select.champion_alias}"})
    parent.set_tags({"embsel.registered_version": version})
    print(f"registered {winner} as models:/{name}@{job.select.champion_alias} (version {version})")
    return []


def unknown_option_error(args: list[str]) -> str | None:
    """One line for ``candidates=[...]`` / ``datasets=[...]`` naming a config that does not exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from embsel_mlflow.config.store import MULTI_SELECT_GROUPS, group_options, searchpath_dirs

    plain = [arg for arg in args if not arg.startswith("-")]
    search_dirs = searchpath_dirs(plain)
    parser = OverridesParser.create()
    parsed = []
    for arg in plain:
        try:
            parsed += parser.parse_overrides([arg])
        except Exception:  # not an override (e.g. the `job` of `--cfg job`) or bad syntax: Hydra reports it
            continue
    for override in parsed:
        group = override.key_or_group
        if group not in MULTI_SELECT_GROUPS or override.is_delete():
            continue
        value = override.value()
        names = value if isinstance(value, list) else [value]
        options = group_options(MULTI_SELECT_GROUPS[group], search_dirs)
        for name in names:
            if str(name) not in options:
                what = {"candidates": "candidate", "windows": "window"}.get(group, "dataset")
                return (
                    f"unknown {what} '{name}': {group}=[...] takes {MULTI_SELECT_GROUPS[group]} configs "
                    f"from conf/{MULTI_SELECT_GROUPS[group]}/: {', '.join(options)}"
                )
    return None


def main(args: list[str]) -> int:
    from embsel_mlflow.config.store import register_configs, searchpath_dirs

    # model/data configs in a hydra.searchpath dir can be candidates/datasets too
    register_configs(searchpath_dirs(args))
    error = unknown_option_error(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        if not any(arg.startswith("-") for arg in args):  # a real run (not --cfg/--help): record it
            from embsel_mlflow.entrypoints.hydra_app import _override_value
            from embsel_mlflow.tracking.run import record_failed_run

            tracking = TrackingConfig(
                uri=_override_value(args, "tracking.uri"),
                experiment=_override_value(args, "tracking.experiment") or TrackingConfig.experiment,
            )
            record_failed_run(tracking, entry_point=STEP, reason=error, run_name=f"{STEP} (invalid config)")
        return EXIT_BAD_INPUT
    return run_app(STEP, select_job, args)
