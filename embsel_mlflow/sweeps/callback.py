"""One MLflow parent run per Hydra sweep; every job a child run of it.

Configured in conf/hydra/callbacks/mlflow_sweep.yaml and listed in each step's primary config, so
any ``embsel <step> -m ...`` (basic, joblib, Ray, submitit launcher; grid or Optuna sweeper) is one
parent run with one child per job:

- ``on_multirun_start`` opens the parent through ``tracked_run`` (so under ``mlflow run`` the
  parent is the run ``mlflow run`` created) and logs the sweep's overrides, sweeper and launcher;
- ``on_job_start`` (in the job's own process) creates the job's child run and points
  ``MLFLOW_RUN_ID`` at it, so the step's ``tracked_run`` logs into the child unchanged;
- ``on_job_end`` closes a child the job left open (it failed before opening its run);
- ``on_multirun_end`` reads the children back, logs the jobs table, failures, the best job (one
  per task when the jobs score different tasks) and a markdown description, and closes the
  parent FINISHED, or FAILED when any job failed.

The callback is pickled into launcher workers, so it holds plain strings only; the open parent
lives in this module, in the process that runs the sweep.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from hydra.experimental.callback import Callback

from embsel_mlflow.errors import EmbselError
from embsel_mlflow.sweeps.jobs import (
    JOB_NUM_TAG,
    JOB_OVERRIDES_TAG,
    MAIN_SCORE,
    ROLE_TAG,
    SweepOutcome,
    child_runs,
    jobs_table,
)
from embsel_mlflow.sweeps.overrides import job_label, override_key, override_value, swept_keys
from embsel_mlflow.tracking.run_naming import job_run_name

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from omegaconf import DictConfig

    from embsel_mlflow.tracking.run_logger import RunLogger

log = logging.getLogger("embsel.sweep")
RUN_ID_ENV = "MLFLOW_RUN_ID"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (markdown)


@dataclass
class _OpenSweep:
    stack: contextlib.ExitStack  # holds the parent's tracked_run open
    run: RunLogger


# Parent run id -> the open sweep, in the process that runs the sweep (never pickled).
_open: dict[str, _OpenSweep] = {}
_last_outcome: SweepOutcome | None = None
_aborted = False  # a parent was closed early (signal, error)


class SweepFailed(Exception):
    """Carries the parent's one-line failure reason into ``tracked_run``."""


class MlflowSweepCallback(Callback):
    """Hydra callback: the sweep is a parent run, each job a child (``mlflow.parentRunId``)."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        self.swept: list[str] = []
        self._child_run_id: str | None = None
        self._previous_run_id: str | None = None

    # -- the sweep (main process) ---------------------------------------------------------

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from embsel_mlflow.tracking.params import config_to_params, mask_override
        from embsel_mlflow.tracking.run import tracked_run
        from embsel_mlflow.tracking.store import resolve_tracking_uri
        from embsel_mlflow.tracking.system_tags import version_tags

        step = str(config.hydra.job.name)
        tracking = _tracking_config(config, step)
        overrides = [mask_override(o) for o in config.hydra.overrides.task]
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
        self.swept = list(dict.fromkeys([*swept_keys(list(config.hydra.overrides.task)), *params]))

        stack = contextlib.ExitStack()
        name = tracking.run_name or f"{step} sweep: {' '.join(overrides)}".strip()
        run = stack.enter_context(tracked_run(tracking, entry_point=step, run_name=name[:250]))
        _open[run.run_id] = _OpenSweep(stack, run)
        self.parent_run_id = run.run_id
        self.tracking_uri = resolve_tracking_uri(tracking.uri)
        self.experiment_id = run.client.get_run(run.run_id).info.experiment_id

        # both nodes are DictConfigs, so each converts to a dict
        setup = {
            "sweeper": cast("dict[str, Any]", OmegaConf.to_container(config.hydra.sweeper, resolve=True)),
            "launcher": cast("dict[str, Any]", OmegaConf.to_container(config.hydra.launcher, resolve=True)),
        }
        run.set_tags(
            {
                ROLE_TAG: "parent",
                "embsel.sweep.sweeper": setup["sweeper"].get("_target_", ""),
                "embsel.sweep.launcher": setup["launcher"].get("_target_", ""),
                **version_tags(),
            }
        )
        run.log_dict({"overrides": overrides}, "overrides.yaml")
        run.log_dict(setup, "sweep/setup.yaml")
        sweep_params, _ = config_to_params({"sweep": {"overrides": " ".join(overrides), **setup}})
        run.log_params(sweep_params)
        log.info("sweep parent run %s", run.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last_outcome
        from omegaconf import OmegaConf

        from embsel_mlflow.sweeps import reuse
        from embsel_mlflow.tracking.run import signals_held

        reuse.leave_sweep()
        # The parent stays in _open until it is closed: a signal or error before that point
        # reaches closing_sweeps, which closes it (KILLED or FAILED).
        sweep = _open.get(self.parent_run_id or "")
        if sweep is None:
            return
        direction = str(OmegaConf.select(config, "hydra.sweeper.direction", default="maximize"))
        try:
            _close_orphans(sweep.run.client, sweep.run.run_id)
            outcome = SweepOutcome(jobs_table(child_runs(sweep.run.client, sweep.run.run_id)), direction)
            _log_outcome(sweep.run, outcome, self.swept)
        except Exception as exc:  # Hydra only warns about a callback's error: close the parent here
            with signals_held():
                _abort(sweep.run.run_id, exc, killed=False)
            raise
        _last_outcome = outcome
        failures = outcome.failure_lines()
        with signals_held():  # closing: a signal now waits until the parent is closed
            del _open[sweep.run.run_id]
            if failures:
                reason = f"{len(failures)} of {len(outcome.jobs)} jobs failed: " + "; ".join(failures)
                sweep.stack.__exit__(SweepFailed, SweepFailed(reason), None)
                # closing FAILED made the description the reason alone: the table goes below it
                with contextlib.suppress(Exception):
                    sweep.run.set_tags({NOTE_TAG: f"**FAILED**\n\n{outcome.description()}"})
            else:
                sweep.stack.close()
        print(f"{outcome.summary_line()}  (parent run {sweep.run.run_id})")
        if failures:
            print(f"error: {reason}", file=sys.stderr)

    # -- one job (in the job's process: in-process, a joblib worker, a SLURM job) -----------

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from embsel_mlflow.config.store import register_resolvers
        from embsel_mlflow.sweeps import reuse
        from embsel_mlflow.tracking.params import mask_override
        from embsel_mlflow.tracking.repair import process_tags
        from embsel_mlflow.tracking.store import open_store

        if self.parent_run_id is None:  # a plain run: nothing to nest
            return
        register_resolvers()  # a fresh worker process has not registered them yet
        reuse.enter_sweep(self.parent_run_id)
        overrides = [mask_override(o) for o in config.hydra.overrides.task]
        job_num = int(config.hydra.job.num)
        client = open_store(self.tracking_uri or "")
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            # the UI's Source and User columns (tracked_run leaves them to whoever created the run)
            "mlflow.source.name": f"embsel {config.hydra.job.name}",
            "mlflow.source.type": "LOCAL",
            "mlflow.user": getpass.getuser(),
            ROLE_TAG: "child",
            JOB_NUM_TAG: str(job_num),
            JOB_OVERRIDES_TAG: " ".join(overrides),
            **process_tags(),  # so a killed job's run is closed by the next embsel process
        }
        run = client.create_run(
            self.experiment_id or "0",
            run_name=job_label(job_num, overrides, self.swept, job_run_name(config))[:250],
            tags=tags,
        )
        self._child_run_id = run.info.run_id
        self._previous_run_id = os.environ.get(RUN_ID_ENV)
        os.environ[RUN_ID_ENV] = run.info.run_id  # the step's tracked_run attaches to it

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        from embsel_mlflow.tracking.run import one_line
        from embsel_mlflow.tracking.store import open_store

        child, self._child_run_id = self._child_run_id, None
        if child is None:
            return
        if self._previous_run_id is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = self._previous_run_id
        # ``_return_value`` holds a failed job's exception (the public getter re-raises it).
        error = job_return._return_value if job_return.status == JobStatus.FAILED else None
        if error is not None and not isinstance(error, EmbselError):
            # A bug, not bad input: keep its traceback (the sweep goes on).
            traceback.print_exception(error, file=sys.stderr)
        client = open_store(self.tracking_uri or "")
        if client.get_run(child).info.status != "RUNNING":
            return
        # The job failed before its step opened the run (or never opened one): close it here.
        if error is not None:
            client.set_tag(child, "error", one_line(error))
        client.set_terminated(child, "FINISHED" if error is None else "FAILED")


def _tracking_config(config: DictConfig, step: str) -> Any:
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.config.compose import to_job_config

    return to_job_config(config.tracking, TrackingConfig, step)


def _log_outcome(run: RunLogger, outcome: SweepOutcome, swept: list[str]) -> None:
    """The jobs table (MLflow table + CSV), counts, failures and the best job (its swept values)."""
    jobs = outcome.jobs
    run.log_table(jobs.astype(object).where(jobs.notna(), None), "sweep/jobs.json")
    run.log_text(jobs.to_csv(index=False), "sweep/jobs.csv")
    failed = len(outcome.failed)
    metrics: dict[str, float] = {
        "jobs_total": len(jobs),
        "jobs_finished": len(jobs) - failed,
        "jobs_failed": failed,
    }
    tags: dict[str, str] = {}
    if failed:
        tags["embsel.sweep.failed_jobs"] = "\n".join(outcome.failure_lines())
    tags[NOTE_TAG] = outcome.description()
    best = outcome.best
    if best is not None:
        metrics[f"best_{MAIN_SCORE}"] = float(best[MAIN_SCORE])
        tags |= {"embsel.sweep.best_run_id": best["run_id"], "embsel.sweep.best_job": str(best["job"])}
        overrides = [o for o in str(best["overrides"]).split() if "=" in o]
        varied = [o for o in overrides if override_key(o) in swept] or overrides
        run.log_params({f"best.{override_key(o)}": override_value(o) for o in varied})
    elif outcome.bests:  # jobs that score different things: one best per task, never one overall
        tags["embsel.sweep.best"] = "\n".join(outcome.best_lines())
        for (task, name), row in outcome.bests.items():
            key = _metric_key(f"{task}.{name}")
            metrics[f"best_{MAIN_SCORE}.{key}"] = float(row[MAIN_SCORE])
            tags[f"embsel.sweep.best_run_id.{key}"] = row["run_id"]
    run.log_metrics(metrics)
    run.set_tags(tags)


def _metric_key(text: str) -> str:
    """``text`` with only the characters MLflow accepts in a metric or tag key."""
    return re.sub(r"[^\w.\-/ ]", "_", text).strip() or "unnamed"


def _close_orphans(client: Any, parent_run_id: str) -> None:
    """Every job has returned: a child still RUNNING lost its worker (killed, crashed); close it FAILED."""
    for child in child_runs(client, parent_run_id):
        if child.info.status == "RUNNING":
            reason = "its worker process ended before the job closed its run"
            client.set_tag(child.info.run_id, "error", reason)
            client.set_terminated(child.info.run_id, "FAILED")


def open_parent() -> RunLogger | None:
    """The parent run of the sweep this process is running, if any (for sweepers)."""
    return next((sweep.run for sweep in _open.values()), None)


def last_outcome() -> SweepOutcome | None:
    """The outcome of the last sweep this process finished."""
    return _last_outcome


def sweep_exit_code() -> int:
    """The CLI's exit code after a sweep: 1 when any job failed or the parent could not be summed up."""
    if _last_outcome is None:
        return 1 if _aborted else 0
    return 1 if len(_last_outcome.failed) else 0


@contextlib.contextmanager
def closing_sweeps() -> Iterator[None]:
    """Around a multirun: a parent still open when the sweep stops early is closed, never left RUNNING.

    Ctrl-C or SIGTERM ends it KILLED, anything else FAILED; its children still RUNNING (a worker
    killed mid-job) end the same way.
    """
    global _last_outcome, _aborted
    _last_outcome, _aborted = None, False
    try:
        yield
    except BaseException as exc:
        from embsel_mlflow.tracking.run import signals_held

        killed = isinstance(exc, KeyboardInterrupt)
        with signals_held():  # a second Ctrl-C must not stop the closing halfway
            for parent_id in list(_open):
                _abort(parent_id, exc, killed)
        raise


def _abort(parent_id: str, exc: BaseException, killed: bool) -> None:
    from embsel_mlflow.tracking.run import one_line

    global _aborted
    _aborted = True
    sweep = _open.pop(parent_id)
    client = sweep.run.client
    if killed:  # RunTerminated names its signal
        reason = getattr(exc, "reason", None) or "interrupted by the user (KeyboardInterrupt)"
    elif isinstance(exc, SystemExit):
        reason = "the sweep stopped with an error; see the console output"
    else:
        reason = one_line(exc)
    with contextlib.suppress(Exception):
        for child in child_runs(client, parent_id):
            if child.info.status == "RUNNING":
                client.set_tag(child.info.run_id, "error", f"sweep stopped: {reason}")
                client.set_terminated(child.info.run_id, "KILLED" if killed else "FAILED")
    signal = exc if killed else SweepFailed(reason)
    sweep.stack.__exit__(type(signal), signal, None)
