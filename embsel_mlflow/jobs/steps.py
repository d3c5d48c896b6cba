"""The Hydra steps and their jobs: ``embsel <step>`` and ``embsel rerun`` run a step through ``run_step``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    job: str  # "<module>:<function>": the job ``jobs.app.run_app`` runs, ``job(cfg, tracking, overrides)``
    # candidates=[...] / datasets=[...] / windows=[...] must name existing configs (checked up front)
    check_options: bool = False
    # "<module>:<function>" taking the command line, for a step that turns its job's result into
    # its exit code itself (monitor: alerts -> monitor.drift_exit_code); else ``run_app(job)``
    command: str | None = None


STEPS: dict[str, Step] = {
    "evaluate": Step("embsel_mlflow.jobs.evaluate:evaluate_job"),
    "select": Step("embsel_mlflow.jobs.select:select_job", check_options=True),
    "train": Step("embsel_mlflow.jobs.train:train_job"),
    "profile": Step("embsel_mlflow.jobs.profile:profile_job", check_options=True),
    "monitor": Step(
        "embsel_mlflow.jobs.monitor:monitor_job",
        check_options=True,
        command="embsel_mlflow.jobs.monitor:run_monitor",
    ),
    "embed": Step("embsel_mlflow.jobs.embed:embed_job"),
}


def run_step(step: str, args: list[str]) -> int:
    """``embsel <step> <args>``: the step's job as a Hydra app (``jobs.app.run_app``); the exit code."""
    from embsel_mlflow.jobs.app import run_app

    spec = STEPS[step]
    if spec.command is not None:
        return int(_load(spec.command)(args))
    return run_app(step, _load(spec.job), args, check_options=spec.check_options)


def _load(target: str) -> Any:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)
