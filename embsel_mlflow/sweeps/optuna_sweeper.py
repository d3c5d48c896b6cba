"""A Hydra sweeper on current Optuna (``hydra/sweeper=optuna``).

The published hydra-optuna-sweeper pins optuna<3; this one uses Optuna's ask/tell API:

- the search space is written in Hydra's override grammar, in ``hydra.sweeper.params`` or as
  sweep overrides on the command line: ``choice(a,b)``, ``range(8,64,8)``, ``interval(0,1)``,
  ``int(interval(1,10))``, ``tag(log, interval(1e-5, 1e-2))``;
- each trial is one job, launched by the configured launcher (``n_jobs`` trials at a time) and so
  one child run of the sweep's parent, tagged with its trial number and objective (the value
  the step returns: ``evaluate`` returns its main score);
- a job that fails is told to Optuna as a failed trial, not as a score;
- with a ``storage`` (e.g. ``sqlite:///optuna.db``) and ``study_name`` the study is persistent:
  the same command run again continues it until it holds ``n_trials`` trials, and several
  workers can share it. Trials a killed process left RUNNING are failed and not counted.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from typing import TYPE_CHECKING, Any, Literal, cast

from hydra.plugins.sweeper import Sweeper

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    from hydra.core.override_parser.types import Override
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

log = logging.getLogger("embsel.sweep")

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "cmaes": "CmaEsSampler",
    "nsgaii": "NSGAIISampler",
}
# Trial user attributes.
WORKER_ATTR = "embsel.worker"  # host:pid of the process that runs the trial
INTERRUPTED_ATTR = "embsel.interrupted"  # killed, not evaluated: does not count toward n_trials
ERROR_ATTR = "embsel.error"


class OptunaSweeper(Sweeper):
    """Optuna ask/tell over Hydra jobs; see the module docstring."""

    def __init__(
        self,
        direction: str = "maximize",
        n_trials: int = 20,
        n_jobs: int = 1,
        seed: int | None = None,
        sampler: str = "tpe",
        storage: str | None = None,
        study_name: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"hydra.sweeper.direction={direction!r}: use maximize or minimize")
        if sampler not in SAMPLERS:
            raise ConfigError(f"hydra.sweeper.sampler={sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if n_trials < 1 or n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_trials and hydra.sweeper.n_jobs must be at least 1")
        self.direction: Literal["maximize", "minimize"] = (
            "maximize" if direction == "maximize" else "minimize"
        )
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.seed = seed
        self.sampler = sampler
        self.storage = storage
        self.study_name = study_name
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def search_space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Distributions from ``params`` and the command line's sweeps; the fixed overrides.

        Raises ConfigError (one line) for a sweep Optuna cannot sample.
        """
        from embsel_mlflow.sweeps.overrides import parse_overrides

        lines = [f"{key}={value}" for key, value in self.params.items()]
        try:
            parsed = parse_overrides([*lines, *arguments])
        except Exception as exc:  # Hydra's grammar errors are multi-line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"search space: {first}") from exc
        space: dict[str, Any] = {}
        fixed: list[str] = []
        for override in parsed:
            key = override.get_key_element()
            if override.is_sweep_override():
                space[key] = distribution(override)
            else:
                space.pop(key, None)  # a fixed value on the command line pins a conf param
                fixed.append(override.input_line or f"{key}={override.get_value_element_as_str()}")
        if not space:
            raise ConfigError(
                "the Optuna sweeper has an empty search space; set hydra.sweeper.params or pass a sweep "
                "such as model.pooling=choice(mean,cls)"
            )
        return space, fixed

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        import optuna

        assert self.config is not None and self.launcher is not None
        space, fixed = self.search_space(arguments)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            direction=self.direction,
            sampler=getattr(optuna.samplers, SAMPLERS[self.sampler])(seed=self.seed),
            load_if_exists=True,
        )
        _fail_stale_trials(study)
        log.info("optuna study '%s': %d of %d trials done", study.study_name, _counted(study), self.n_trials)
        returns: list[JobReturn] = []
        while (remaining := self.n_trials - _counted(study)) > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, remaining))]
            for trial in trials:
                trial.set_user_attr(WORKER_ATTR, _worker())
            batch = [[*fixed, *(f"{k}={_grammar(v)}" for k, v in t.params.items())] for t in trials]
            # Job numbers follow trial numbers (child runs are named "#<job> ..."); they stay
            # unique even when another worker of a shared study takes the numbers in between.
            job_num = trials[0].number
            try:
                results = self.launcher.launch(batch, initial_job_idx=job_num)
            except BaseException:  # Ctrl-C, SIGTERM, a launcher error: these trials were not evaluated
                for trial in trials:
                    trial.set_user_attr(INTERRUPTED_ATTR, True)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            for trial, result in zip(trials, results, strict=True):
                _tell(study, trial, result)
            _tag_children(study, trials, range(job_num, job_num + len(trials)))
            returns += results
        _log_best_trial(study)
        return returns


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override (Hydra grammar)."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    key = override.get_key_element()
    log_scale = isinstance(value, IntervalSweep | RangeSweep) and "log" in value.tags
    if override.is_range_sweep() and isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int) and not value.shuffle:
            last = start + (len(range(start, stop, int(step))) - 1) * int(step)
            return IntDistribution(start, last, log=log_scale, step=1 if log_scale else int(step))
        return CategoricalDistribution(_choices(override))
    if override.is_choice_sweep():
        return CategoricalDistribution(_choices(override))
    if override.is_interval_sweep() and isinstance(value, IntervalSweep):
        assert value.start is not None and value.end is not None
        if isinstance(value.start, int) and isinstance(value.end, int):  # int(interval(...))
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ConfigError(f"{key}: the Optuna sweeper supports choice, range and interval sweeps")


def _choices(override: Override) -> list[str | int | float | bool]:
    """The values a choice or range sweep lists: primitives as they are, anything else as its text."""
    from hydra.core.override_parser.types import Transformer

    # Transformer.encode returns only those types; hydra annotates it with every parsed element type
    return cast(
        "list[str | int | float | bool]", list(override.sweep_iterator(transformer=Transformer.encode))
    )


def _grammar(value: Any) -> str:
    """A sampled value as Hydra override text (strings escaped as the grammar needs)."""
    from hydra.core.override_parser.types import Transformer

    return Transformer.str(value)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _counted(study: optuna.Study) -> int:
    """Trials that count toward n_trials: all but those a kill interrupted."""
    return sum(1 for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(INTERRUPTED_ATTR))


def _fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and stop counting) trials that a process on this host left RUNNING when it was killed."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue  # another live worker's trial (or another machine's): leave it alone
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        log.info("optuna trial %d was left running by a killed process; marked failed", trial.number)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
    """The job's return value as the trial's objective; a failed job or a non-number fails the trial."""
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from embsel_mlflow.tracking.run import one_line

    value = result._return_value  # the public getter re-raises a failed job's exception
    if result.status == JobStatus.COMPLETED and isinstance(value, int | float) and math.isfinite(value):
        study.tell(trial, float(value))
        return
    if result.status == JobStatus.COMPLETED:
        reason = f"the job returned {value!r}, not a finite number to optimise"
    else:
        reason = one_line(value) if isinstance(value, BaseException) else "the job failed"
    trial.set_user_attr(ERROR_ATTR, reason)
    study.tell(trial, state=TrialState.FAIL)


def _tag_children(study: optuna.Study, trials: list[optuna.Trial], job_nums: range) -> None:
    """Each trial's child run gets its trial number and objective."""
    from embsel_mlflow.sweeps.callback import open_parent
    from embsel_mlflow.sweeps.jobs import JOB_NUM_TAG, TRIAL_TAG, child_runs

    parent = open_parent()
    if parent is None:
        return
    children = child_runs(parent.client, parent.run_id)
    by_job = {run.data.tags.get(JOB_NUM_TAG): run.info.run_id for run in children}
    for trial, job_num in zip(trials, job_nums, strict=True):
        run_id = by_job.get(str(job_num))
        if run_id is None:
            continue
        frozen = study._storage.get_trial(trial._trial_id)
        parent.client.set_tag(run_id, TRIAL_TAG, str(trial.number))
        if frozen.value is not None:
            parent.client.log_metric(run_id, "objective", frozen.value)


def _log_best_trial(study: optuna.Study) -> None:
    """The study's best trial (possibly from an earlier, resumed run) on the parent."""
    from embsel_mlflow.sweeps.callback import open_parent

    parent = open_parent()
    completed = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if parent is None or not completed:
        return
    best = study.best_trial
    parent.set_tags(
        {
            "optuna.study_name": study.study_name,
            "optuna.best_trial_number": best.number,
            "optuna.n_trials": len(study.get_trials(deepcopy=False)),
        }
    )
    parent.log_params({f"best_trial.{k}": _grammar(v) for k, v in best.params.items()})
    if best.value is not None:  # always set on the best (completed, single-objective) trial
        parent.log_metrics({"best_objective": float(best.value)})
