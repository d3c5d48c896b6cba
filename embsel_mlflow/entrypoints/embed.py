"""``embsel embed``: encode a dataset's texts into the embedding cache on a Ray cluster, as one MLflow run."""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.steps import run_step


def main(args: list[str]) -> int:
    return run_step("embed", args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
