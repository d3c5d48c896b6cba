"""The jobs of a sweep, read back from its child runs: the parent's table, failures and best job.

MLflow is the source of truth: it is the one place every launcher (in-process, joblib workers,
SLURM jobs) writes to, so the table is right whichever launcher ran the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

# Child-run tags the sweep callback and the Optuna sweeper write.
JOB_NUM_TAG = "embsel.sweep.job_num"
JOB_OVERRIDES_TAG = "embsel.sweep.overrides"
TRIAL_TAG = "embsel.sweep.trial_number"
ROLE_TAG = "embsel.sweep"  # "parent" or "child"
MAIN_SCORE = "main_score"
JOB_COLUMNS = ["job", "trial", "overrides", "status", MAIN_SCORE, "run_id", "error"]


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    """Every run whose ``mlflow.parentRunId`` is ``parent_run_id`` (all pages)."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def jobs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per job, in job order: overrides, status, main score, run id, failure reason."""
    import pandas as pd

    rows = []
    for run in runs:
        tags = run.data.tags
        rows.append(
            {
                "job": int(tags.get(JOB_NUM_TAG, -1)),
                "trial": int(tags[TRIAL_TAG]) if TRIAL_TAG in tags else None,
                "overrides": tags.get(JOB_OVERRIDES_TAG, ""),
                "status": run.info.status,
                MAIN_SCORE: run.data.metrics.get(MAIN_SCORE),
                "run_id": run.info.run_id,
                "error": tags.get("error", ""),
            }
        )
    frame = pd.DataFrame(rows, columns=JOB_COLUMNS)
    if frame["trial"].isna().all():
        frame = frame.drop(columns="trial")
    return frame.sort_values("job", kind="stable").reset_index(drop=True)


@dataclass
class SweepOutcome:
    """What a finished sweep reports: its jobs, the failed ones and the best one."""

    jobs: pd.DataFrame
    direction: str = "maximize"

    @property
    def failed(self) -> pd.DataFrame:
        return self.jobs[self.jobs["status"] != "FINISHED"]

    @property
    def best(self) -> pd.Series | None:
        scored = self.jobs[(self.jobs["status"] == "FINISHED") & self.jobs[MAIN_SCORE].notna()]
        if scored.empty:
            return None
        scores = scored[MAIN_SCORE].astype(float)
        return scored.loc[scores.idxmin() if self.direction == "minimize" else scores.idxmax()]

    def failure_lines(self) -> list[str]:
        return [
            f"job #{row.job} ({row.overrides}) {row.status}: {row.error or 'no reason recorded'}"
            for row in self.failed.itertuples()
        ]

    def summary_line(self) -> str:
        total, failed = len(self.jobs), len(self.failed)
        line = f"sweep: {total - failed} of {total} jobs finished"
        if failed:
            line += f", {failed} failed"
        best = self.best
        if best is not None:
            line += f"; best job #{best['job']} ({best['overrides']}): {MAIN_SCORE} = {best[MAIN_SCORE]:.5f}"
        return line
