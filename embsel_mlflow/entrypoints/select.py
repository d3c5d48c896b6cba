"""``embsel select``: rank candidates on datasets; one parent MLflow run, one child per pair."""

from __future__ import annotations

from embsel_mlflow.jobs.app import run_app
from embsel_mlflow.jobs.select import STEP, select_job


def main(args: list[str]) -> int:
    # candidates=[...] / datasets=[...] must name model / data configs (conf/ or a hydra.searchpath dir)
    return run_app(STEP, select_job, args, check_options=True)
