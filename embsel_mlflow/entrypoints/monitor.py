"""``embsel monitor``: a reference (data + model) against new windows of text, as MLflow time series.

One parent run per monitored model and reference (reopened on every invocation, so the time
series continue), one child run per window; a window already monitored is skipped. What runs
inside the runs is ``embsel_mlflow.jobs.monitor``; the statistics are ``embsel_mlflow.monitoring``.

Exit codes: 0 all well, ``monitor.drift_exit_code`` (3) drift or a quality drop, 2 bad input.
"""

from __future__ import annotations

import sys

from embsel_mlflow.jobs.steps import run_step


def main(args: list[str]) -> int:
    return run_step("monitor", args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
