"""``embsel evaluate``: score one embedding model on one dataset, as one MLflow run."""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.steps import run_step


def main(args: list[str]) -> int:
    return run_step("evaluate", args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
