"""``embsel select``: rank candidates on datasets; one parent MLflow run, one child per pair.

Each child logs exactly what ``embsel evaluate`` logs for its pair (``evaluate_in_run``, the
config through ``log_config``), plus its ``efficiency/*`` metrics. The parent holds the
decision: leaderboard (markdown, CSV, MLflow table), the quality-vs-throughput plot, the
recommendation (tag, run description, terminal) and, with ``select.register``, the champion.
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
    from embsel_mlflow.config.schema import DataConfig, ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.selection import Selection
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
                    **version_tags(),
                }
            )
            log_config(run, OmegaConf.structured(pair_job), self.overrides)
            yield ChildScope(run, pair_job)


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
        tracker = ChildRunTracker(parent.run_id, job, overrides)
        cache = open_cache(job.cache)
        selection = select_models(
            job.candidates,
            job.datasets,
            job.select,
            job.evaluation,
            tracker=tracker,
            load_model=default_loader(cache),
            measurements=(
                MeasurementCache(cache.measurements_dir, reuse=job.select.efficiency.reuse)
                if cache is not None
                else None
            ),
        )
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


def _run_name(cfg: Any) -> str:
    from omegaconf import OmegaConf

    candidates = list(OmegaConf.select(cfg, "candidates", default={}) or {})
    return f"select {len(candidates)} candidate(s)"


def _problems(selection: Selection) -> list[str]:
    problems = []
    if selection.failures:
        problems.append(f"{len(selection.failures)} pair(s) failed: " + "; ".join(selection.failures))
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
    text = f"**Recommendation:** {selection.decision.recommendation}\n\n"
    if selection.failures:
        text += "**Failed:** " + "; ".join(selection.failures) + "\n\n"
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
        cfg = job.candidates[winner]
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
