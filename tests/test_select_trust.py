"""Issue 22 on `select`: stable intervals, a readable description, one line for a bad registered
name, and Ctrl-C that always stops a selection (exit 130, the runs KILLED)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embsel_mlflow.config import SelectJobConfig
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.jobs.app import to_job_config
from tests.test_select import FAST, _runs, _select, _tiny_candidates


def _job(overrides: list[str]) -> SelectJobConfig:
    return to_job_config(compose_config("select", overrides), SelectJobConfig, "select")


def test_a_candidates_interval_on_a_dataset_does_not_depend_on_the_other_datasets(
    tiny_bert_dir: Path, tiny_st_dir: Path
) -> None:
    from embsel_mlflow.selection import select_models

    base = [*_tiny_candidates(tiny_bert_dir, tiny_st_dir), "select.resamples=200"]
    decisions = []
    for datasets in ("[demo_sts]", "[demo_retrieval,demo_sts]"):
        job = _job([*base, f"datasets={datasets}"])
        job.select.efficiency.sample_size, job.select.efficiency.latency_queries = 8, 2
        decisions.append(select_models(job.candidates, job.datasets, job.select, job.evaluation).decision)
    alone, with_other = decisions
    for candidate in ("transformers_mean", "e5_base"):
        assert alone.scores[candidate]["demo_sts"] == with_other.scores[candidate]["demo_sts"]
        assert alone.intervals[candidate]["demo_sts"] == with_other.intervals[candidate]["demo_sts"]
    assert (
        alone.comparisons["demo_sts"]["e5_base"].p_value
        == with_other.comparisons["demo_sts"]["e5_base"].p_value
    )


@pytest.mark.parametrize("name", ["team/embedder", "embedder:v2", " "])
def test_a_registered_name_mlflow_refuses_is_one_line_before_any_pair(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, tiny_bert_dir: Path, tiny_st_dir: Path
) -> None:
    args = [
        *_tiny_candidates(tiny_bert_dir, tiny_st_dir),
        "datasets=[demo_sts]",
        *FAST,
        f"select.register='{name}'",
    ]
    assert _select(args, tmp_path) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "select.register" in errors[0] and "Traceback" not in err, err
    (run,) = _runs(tmp_path)  # the parent, FAILED with the reason; no child ran
    assert run.info.status == "FAILED" and "select.register" in run.data.tags["error"]


def test_an_alias_mlflow_reserves_is_one_line() -> None:
    with pytest.raises(Exception, match="champion_alias"):
        _job(["select.champion_alias=latest"])


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_a_ctrl_c_that_lands_in_a_finalizer_still_interrupts() -> None:
    """The root cause of select swallowing Ctrl-C: the handler ran inside a finalizer (the garbage
    collector frees a candidate's model after its datasets), where Python drops the exception."""
    from embsel_mlflow.tracking.run import terminate_on_signals

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the handler runs here, inside the finalizer
                pass

    interrupted = False
    with terminate_on_signals():
        try:
            Finalized()  # freed at once: __del__ runs
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except KeyboardInterrupt:
            interrupted = True
    assert interrupted


def test_a_ctrl_c_inside_sqlalchemy_waits_until_the_write_is_done() -> None:
    """A KeyboardInterrupt in the middle of a session's flush left sqlite's write lock held, and
    the writes that close the run KILLED hung on "database is locked" (CI, stop 26)."""
    from embsel_mlflow.tracking.run import terminate_on_signals

    # a function whose module is sqlalchemy's, as the store's flush is
    namespace: dict = {"__name__": "sqlalchemy.orm.session", "os": os, "signal": signal, "time": time}
    exec(
        "def flush(steps):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    for _ in range(20):\n"
        "        time.sleep(0.01)\n"
        "        steps.append('written')\n",
        namespace,
    )
    steps: list[str] = []
    with terminate_on_signals(), pytest.raises(KeyboardInterrupt):
        namespace["flush"](steps)  # the signal lands here and waits
        time.sleep(2)  # then arrives here, in ordinary code
    assert steps == ["written"] * 20


def _ctrl_c_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal (a shell's `&` would ignore it)


def _statuses(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            return dict(conn.execute("select name, status from runs").fetchall())
        except sqlite3.OperationalError:  # the file is there, its tables not yet (the store is being created)
            return {}


@pytest.mark.slow  # ten real selections, each interrupted: about a minute or more on 2 cores
def test_ctrl_c_at_random_moments_ends_select_130_with_the_runs_killed(
    tiny_bert_dir: Path, tiny_st_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(int(time.time()))
    args = [*_tiny_candidates(tiny_bert_dir, tiny_st_dir), "datasets=[demo_sts,demo_retrieval]", *FAST]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    outcomes = []
    for attempt in range(10):
        cwd = tmp_path / str(attempt)
        cwd.mkdir()
        db = cwd / "mlflow.db"
        command = [sys.executable, "-m", "embsel_mlflow", "select", *args, f"tracking.uri=sqlite:///{db}"]
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_ctrl_c_default,
        )  # fmt: skip
        # wait for the parent run, then a random moment of the selection
        deadline = time.monotonic() + 120
        while not _statuses(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 4.0))
        if proc.poll() is not None:
            outcomes.append(("finished before the signal", proc.returncode))
            continue
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        took = time.monotonic() - sent
        statuses = _statuses(db)
        outcomes.append((proc.returncode, round(took, 1), statuses))
        # 130, or ended by SIGINT itself after the run was closed: a shell reports both as 130
        assert proc.returncode in (130, -signal.SIGINT), (attempt, err[-2000:])
        assert "interrupted" in err and "Traceback" not in err, err[-2000:]
        assert took < 10, (attempt, took)
        assert "RUNNING" not in statuses.values() and "KILLED" in statuses.values(), statuses
        (parent,) = [name for name in statuses if name.startswith("select ")]
        assert statuses[parent] == "KILLED", statuses
    interrupted = [o for o in outcomes if o[0] in (130, -signal.SIGINT)]
    assert len(interrupted) >= 8, outcomes  # the signal landed during the selection, not after it
