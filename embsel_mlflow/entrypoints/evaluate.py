"""``embsel evaluate``: score one embedding model on one dataset, as one MLflow run."""

from __future__ import annotations

from embsel_mlflow.jobs.app import run_app
from embsel_mlflow.jobs.evaluate import STEP, evaluate_job


def main(args: list[str]) -> int:
    return run_app(STEP, evaluate_job, args)
