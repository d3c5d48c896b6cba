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
# What a child's main score measures (tags its step logs): scores compare only within one (task, name)
TASK_TAG = "embsel.task"
MAIN_SCORE_NAME_TAG = "main_score_name"
JOB_COLUMNS = [
    "job",
    "trial",
    "overrides",
    "status",
    "task",
    "main_score_name",
    MAIN_SCORE,
    "run_id",
    "error",
]


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
                "task": tags.get(TASK_TAG, ""),
                "main_score_name": tags.get(MAIN_SCORE_NAME_TAG, ""),
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
    """What a finished sweep reports: its jobs, the failed ones and the best one per comparable group.

    Main scores compare only between jobs of one task that score the same thing (the same
    ``main_score_name``): an accuracy of 1.0 does not beat a Spearman of 0.73. A sweep over one
    task has one best job; over several, one best per (task, score name).
    """

    jobs: pd.DataFrame
    direction: str = "maximize"

    @property
    def failed(self) -> pd.DataFrame:
        return self.jobs[self.jobs["status"] != "FINISHED"]

    @property
    def bests(self) -> dict[tuple[str, str], pd.Series]:
        """The best finished, scored job of each (task, main score name), in first-job order."""
        scored = self.jobs[(self.jobs["status"] == "FINISHED") & self.jobs[MAIN_SCORE].notna()]
        found: dict[tuple[str, str], pd.Series] = {}
        for key, group in scored.groupby(["task", "main_score_name"], sort=False):
            scores = group[MAIN_SCORE].astype(float)
            found[(str(key[0]), str(key[1]))] = group.loc[
                scores.idxmin() if self.direction == "minimize" else scores.idxmax()
            ]
        return found

    @property
    def best(self) -> pd.Series | None:
        """The one best job, where every scored job measures the same thing; else None."""
        bests = self.bests
        return next(iter(bests.values())) if len(bests) == 1 else None

    def failure_lines(self) -> list[str]:
        return [
            f"job #{row.job} ({row.overrides}) {row.status}: {row.error or 'no reason recorded'}"
            for row in self.failed.itertuples()
        ]

    def best_lines(self) -> list[str]:
        """One line per comparable group: its best job and score (plain text)."""
        return [
            f"{_measure(task, name)}: best job #{row['job']} ({row['overrides']}) = {row[MAIN_SCORE]:.5f}"
            for (task, name), row in self.bests.items()
        ]

    def summary_line(self) -> str:
        total, failed = len(self.jobs), len(self.failed)
        line = f"sweep: {total - failed} of {total} jobs finished"
        if failed:
            line += f", {failed} failed"
        best, bests = self.best, self.bests
        if best is not None:
            line += f"; best job #{best['job']} ({best['overrides']}): {MAIN_SCORE} = {best[MAIN_SCORE]:.5f}"
        elif bests:
            line += f"; scores of {len(bests)} kinds, not compared: one best per task (see the parent run)"
        return line

    def description(self) -> str:
        """The parent's markdown description: a table of the jobs, then the best per task.

        Every value is in a code span (or escaped) so that ``[test] (sts)`` never renders as a link.
        """
        import pandas as pd

        lines = [self.summary_line().split(";")[0].replace("sweep: ", "Sweep: "), ""]
        bests = self.bests
        if len(bests) > 1:
            lines += ["Main scores of different tasks or metrics are not compared: one best per task.", ""]
        for (task, name), row in bests.items():
            lines.append(
                f"- **best** {_code(_measure(task, name))}: job #{row['job']} "
                f"{_code(str(row['overrides']))} = {row[MAIN_SCORE]:.5f}"
            )
        if bests:
            lines.append("")
        lines += ["| job | overrides | status | task, score | main score |", "|---|---|---|---|---|"]
        for row in self.jobs.itertuples():
            score = "" if pd.isna(row.main_score) else f"{row.main_score:.5f}"
            measure = _measure(row.task, row.main_score_name) if row.task or row.main_score_name else ""
            status = row.status if row.status == "FINISHED" else f"**{row.status}**"
            lines.append(f"| {row.job} | {_code(row.overrides)} | {status} | {_code(measure)} | {score} |")
        failures = self.failure_lines()
        if failures:
            lines += ["", "Failures:", *(f"- {_code(line)}" for line in failures)]
        return "\n".join(lines)


def _measure(task: str, name: str) -> str:
    return f"{task or '?'} {name or MAIN_SCORE}".strip()


def _code(text: str) -> str:
    """``text`` as a markdown code span inside a table cell: nothing in it renders as markup."""
    if not text:
        return ""
    text = text.replace("|", "\\|").replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"
