"""Where a selection's pairs run: in this process (``runner.run_selection``), or with
``select.executor=ray`` every (candidate, dataset) pair as one Ray task on a cluster.

Each task loads its dataset and candidate on the node Ray chose, with the resources the candidate
declares (``model.resources``, else ``select.ray.num_cpus`` / ``num_gpus``), and runs the pair
exactly as the sequential path does (``runner.run_pair``): through the same tracker, so its child
run is logged by the one scored-pair path, on that node, and its efficiency is timed there. The
task returns the whole :class:`PairOutcome` (scores, per-item table, efficiency, run id) and the
driver decides on them as on a sequential selection's: the same results give the same
leaderboard, statistics and decision.

The nodes need embsel-mlflow installed, the datasets and the embedding cache at the same paths
(shared storage), and the tracking store reachable (a tracking server, or a sqlite file on shared
storage). Ctrl-C on the driver cancels the tasks: a running one gets a KeyboardInterrupt and its
child run ends KILLED.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.selection.runner import (
    CandidateInfo,
    Measurements,
    PairOutcome,
    PairTracker,
    SelectionRun,
    prepare,
    run_pair,
    run_selection,
)

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, EvaluationConfig, ModelConfig, SelectConfig

log = logging.getLogger("embsel.select")
_CANCEL_WAIT_S = 30.0  # time for cancelled tasks to close their child runs KILLED


def task_options(model: ModelConfig, cfg: SelectConfig) -> dict[str, float]:
    """What one task of ``model`` reserves: its ``model.resources``, else ``select.ray``'s defaults."""
    declared = model.resources
    cpus = cfg.ray.num_cpus if declared.num_cpus is None else declared.num_cpus
    gpus = cfg.ray.num_gpus if declared.num_gpus is None else declared.num_gpus
    return {"num_cpus": float(cpus), "num_gpus": float(gpus)}


def _portable(data: DataConfig) -> DataConfig:
    """``data`` with an absolute root: a task's working directory is not the driver's."""
    if data.root and not Path(data.root).expanduser().is_absolute():
        return dataclasses.replace(data, root=str(Path(data.root).expanduser().resolve()))
    return data


def _remote_pair(
    candidate: str,
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    cfg: SelectConfig,
    *,
    tracker: PairTracker,
    load_model: Callable[[ModelConfig], Any],
    measurements: Measurements | None,
    has_retrieval: bool,
) -> tuple[PairOutcome, CandidateInfo]:
    """The body of one Ray task: load, evaluate and time the pair on this node."""
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.selection.runner import _attempt, candidate_info

    data = _attempt(partial(load_task_data, data_cfg))
    model = _attempt(partial(load_model, model_cfg))
    outcome = PairOutcome(candidate, str(data_cfg.name), str(data_cfg.task))
    scoring = (tracker, model, model_cfg, data_cfg, data, cfg, measurements)
    run_pair(outcome, *scoring, has_retrieval=has_retrieval)
    return outcome, candidate_info(candidate, model_cfg, model)


def _refuse_infeasible(options: Mapping[str, dict[str, float]]) -> None:
    """One line for a candidate asking more CPUs or GPUs than the whole cluster has: Ray would keep
    its task pending forever."""
    import ray

    from embsel_mlflow.errors import ConfigError

    total = ray.cluster_resources()
    for name, wanted in options.items():
        for option, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if wanted[option] > total.get(resource, 0.0):
                raise ConfigError(
                    f"candidate '{name}' asks for {option}={wanted[option]:g} but the Ray cluster has "
                    f"{total.get(resource, 0.0):g} {resource}(s) in all; lower "
                    f"candidates.{name}.resources.{option} (or select.ray.{option}), or add nodes"
                )


def _connect(address: str | None) -> bool:
    """Join the cluster (``select.ray.address``, else ``RAY_ADDRESS``, else a local instance);
    True when this call started the connection (and so ends it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # the tasks' output stays on their nodes: the console shows the selection, not every worker
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    return True


def run_pairs(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig,
    evaluation: EvaluationConfig,
    *,
    tracker: PairTracker | None = None,
    load_model: Callable[[ModelConfig], Any] | None = None,
    measurements: Measurements | None = None,
) -> SelectionRun:
    """Every pair evaluated where ``select.executor`` says (see ``runner.run_selection``)."""
    if cfg.executor != "ray":
        scoring: dict[str, Any] = {"tracker": tracker, "load_model": load_model, "measurements": measurements}
        return run_selection(candidates, datasets, cfg, evaluation, **scoring)
    ready = prepare(candidates, datasets, evaluation, tracker, load_model)
    return _on_ray(candidates, datasets, cfg, ready, measurements)


def _on_ray(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig,
    ready: tuple[PairTracker, Callable[[ModelConfig], Any], bool],
    measurements: Measurements | None,
) -> SelectionRun:
    """Every pair as a Ray task; the outcomes in candidate-major order, as ``run_selection`` gives.

    ``ready``: ``runner.prepare``'s tracker, loader and whether some dataset is a retrieval one.
    With ``cfg.register``, a registrable winner is loaded again on the driver to be registered
    (``SelectionRun.loaders``): a model fitted per dataset stays on its node and is not registrable.
    """
    import ray

    tracker, load_model, has_retrieval = ready
    started = _connect(cfg.ray.address)
    try:
        _refuse_infeasible({name: task_options(model, cfg) for name, model in candidates.items()})
    except BaseException:
        if started:
            ray.shutdown()
        raise
    task: Any = _remote_pair  # Ray's stubs type remote functions of positional arguments only
    remote = ray.remote(task)
    selection = SelectionRun(candidates={}, datasets={name: str(d.task) for name, d in datasets.items()})
    submitted = []
    try:
        for name, model_cfg in candidates.items():
            for data_cfg in datasets.values():
                log.info("submitting '%s' on '%s' to Ray", name, data_cfg.name)
                options = task_options(model_cfg, cfg)
                ref = remote.options(name=f"{name}@{data_cfg.name}", max_retries=0, **options).remote(
                    name, model_cfg, _portable(data_cfg), cfg, tracker=tracker, load_model=load_model,
                    measurements=measurements, has_retrieval=has_retrieval,
                )  # fmt: skip
                submitted.append(ref)
        try:
            done = ray.get(submitted)
        except KeyboardInterrupt:
            for ref in submitted:  # a running task gets a KeyboardInterrupt: its child ends KILLED
                ray.cancel(ref)
            ray.wait(submitted, num_returns=len(submitted), timeout=_CANCEL_WAIT_S)
            raise
    finally:
        if started:
            ray.shutdown()
    for outcome, info in done:
        selection.outcomes.append(outcome)
        known = selection.candidates.setdefault(info.name, info)
        known.load_error = known.load_error or info.load_error
        known.registrable = known.registrable and info.registrable
    for name, info in selection.candidates.items():
        if cfg.register and info.registrable:
            selection.loaders[name] = partial(load_model, candidates[name])
    return selection
