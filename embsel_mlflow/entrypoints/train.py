"""``embsel train``: fine-tune one model on a dataset's train split, as one MLflow run."""

from __future__ import annotations

from embsel_mlflow.jobs.app import run_app
from embsel_mlflow.jobs.train import STEP, train_job


def main(args: list[str]) -> int:
    return run_app(STEP, train_job, args)
