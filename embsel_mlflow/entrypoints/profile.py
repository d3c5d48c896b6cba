"""``embsel profile``: profile a dataset (or any table) against candidate models, as one MLflow run."""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.app import run_app
from embsel_mlflow.jobs.profile import STEP, profile_job


def main(args: list[str]) -> int:
    # candidates=[...] must name model configs (conf/model or a hydra.searchpath dir)
    return run_app(STEP, profile_job, args, check_options=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
