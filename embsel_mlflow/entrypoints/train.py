"""``embsel train``: fine-tune one model on a dataset's train split, as one MLflow run."""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.steps import run_step


def main(args: list[str]) -> int:
    return run_step("train", args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
