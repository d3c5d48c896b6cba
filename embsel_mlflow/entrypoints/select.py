"""``embsel select``: rank candidates on datasets; one parent MLflow run, one child per pair."""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.steps import run_step


def main(args: list[str]) -> int:
    return run_step("select", args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
