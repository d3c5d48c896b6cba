"""`embsel <step> -m`: one parent run per sweep, every job a child; failures, joblib, Optuna, reuse.

Real Hydra multiruns in subprocesses (``run_cli``) against real sqlite stores and a real
`mlflow server`, with the tiny BERT built by the fixtures.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.data import demo_data_dir
from embsel_mlflow.sweeps.overrides import job_label, preflight_jobs, swept_keys
from embsel_mlflow.tracking.store import open_store
from tests.test_server import server  # noqa: F401  (fixture: a live mlflow server on 127.0.0.1)

QUIET = ["evaluation.show_progress=false", "tracking.log_per_item=false"]


@pytest.fixture(autouse=True)
def _absolute_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The store by absolute path: MLflow caches sqlite stores by URI, so in-process runs in
    different working directories would share one relative ``sqlite:///mlflow.db``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _tiny(model_dir: Path) -> list[str]:
    return ["model=transformers_mean", f"model.name_or_path={model_dir}", "model.name=tiny"]


def _runs(uri: str) -> list:
    # open_store takes the store's creation lock: a sweep may still be migrating a fresh store
    client = open_store(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


def _split(runs: list) -> tuple[list, list]:
    parents = [r for r in runs if r.data.tags.get("embsel.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _jobs_csv(uri: str, parent_id: str) -> list[dict[str, str]]:
    path = MlflowClient(uri).download_artifacts(parent_id, "sweep/jobs.csv")
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


# -- override helpers (pure) -----------------------------------------------------------------


def test_preflight_composes_every_value_once_not_the_whole_grid() -> None:
    jobs = preflight_jobs(["data=a,b,c", "model.batch_size=1,2", "x=3", "y=interval(0,1)"])
    assert len(jobs) == 3  # the longest sweep, not 3 x 2
    assert {j[-2] for j in jobs} == {"data=a", "data=b", "data=c"}
    assert {j[-1] for j in jobs} == {"model.batch_size=1", "model.batch_size=2"}
    assert all("x=3" in j and not any(o.startswith("y=") for o in j) for j in jobs)


def test_child_names_show_the_swept_values() -> None:
    assert swept_keys(["data=a,b", "x=1", "y=range(3)"]) == ["data", "y"]
    assert job_label(4, ["data=b", "x=1", "y=2"], ["data", "y"]) == "#4 data=b y=2"
    # with the model@dataset name, the model and data keys are in it already
    named = job_label(4, ["data=b", "model.batch_size=8", "y=2"], ["data", "model.batch_size", "y"], "m@b")
    assert named == "#4 m@b y=2"


# -- parent and children ---------------------------------------------------------------------


@pytest.fixture
def four_roots(tmp_path: Path) -> list[str]:
    """Four copies of the demo STS set; the third has no test file (bad input for one job)."""
    roots = []
    for name in ("a", "b", "missing", "d"):
        root = tmp_path / "sets" / name
        root.mkdir(parents=True)
        if name != "missing":
            shutil.copy(demo_data_dir() / "sts" / "test.csv", root / "test.csv")
        roots.append(str(root))
    return roots


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_failed_job_does_not_stop_the_sweep_and_the_parent_lists_it(
    run_cli, tmp_path: Path, tiny_bert_dir: Path, four_roots: list[str]
) -> None:
    result = run_cli(
        "evaluate", "-m", f"data.root={','.join(four_roots)}", "data.splits.test.path=test.csv",
        *_tiny(tiny_bert_dir), *QUIET,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (parent,), children = _split(_runs(uri))
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    reason = failed.data.tags["error"]
    assert "missing" in reason and "test.csv" in reason and "\n" not in reason
    assert f"error: {reason}" in result.stderr.splitlines()  # the job's own one-line error
    assert "Traceback" not in result.stderr
    # the parent: FAILED with the failures listed, the jobs table, the best job
    assert parent.info.status == "FAILED"
    assert reason in parent.data.tags["embsel.sweep.failed_jobs"]
    assert "1 of 4 jobs failed" in parent.data.tags["error"]
    assert parent.data.metrics["jobs_failed"] == 1 and parent.data.metrics["jobs_finished"] == 3
    jobs = _jobs_csv(uri, parent.info.run_id)
    assert [row["job"] for row in jobs] == ["0", "1", "2", "3"]
    assert [row["status"] for row in jobs] == ["FINISHED", "FINISHED", "FAILED", "FINISHED"]
    assert jobs[2]["error"] == reason and jobs[2]["run_id"] == failed.info.run_id
    finished = {c.info.run_id: c.data.metrics["main_score"] for c in children if c.info.status == "FINISHED"}
    assert {row["run_id"]: float(row["main_score"]) for row in jobs if row["main_score"]} == finished
    best_id = parent.data.tags["embsel.sweep.best_run_id"]
    assert parent.data.metrics["best_main_score"] == max(finished.values()) == finished[best_id]
    assert parent.data.params["best.data.root"] in four_roots
    assert parent.data.params["sweep.sweeper._target_"].endswith("GridSweeper")
    assert parent.data.params["sweep.launcher._target_"].endswith("BasicLauncher")
    assert "sweep: 3 of 4 jobs finished, 1 failed" in result.stdout
    # the description: FAILED first, then the jobs table with the failed row, then the failure
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**FAILED**") and "| job | overrides | status | task, score | main score |" in note
    assert f"| 2 | `{jobs[2]['overrides']}` | **FAILED** |" in note and reason in note


def test_config_that_does_not_compose_under_multirun_is_one_line_and_a_failed_run(
    run_cli, tmp_path: Path
) -> None:
    result = run_cli("evaluate", "-m", "data=demo_sts,no_such_set")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_such_set" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    (run,) = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED" and "no_such_set" in run.data.tags["error"]


def test_bad_sweeper_setting_is_one_line_before_anything_runs(run_cli, tmp_path: Path) -> None:
    result = run_cli("evaluate", "-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler=nope", "data=demo_sts")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    choices = "tpe, random, gp, qmc, cmaes, nsgaii"
    assert errors == [f"error: invalid sweep: hydra.sweeper.sampler='nope': choose one of {choices}"]
    (run,) = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"


# -- parallel sweeps -------------------------------------------------------------------------

EIGHT_JOBS = [
    "model.batch_size=4,8",
    "data=demo_sts,demo_pair_classification,demo_classification,demo_clustering",
]


def _parallel_sweep(run_cli, model_dir: Path, *tracking: str, env: dict[str, str] | None = None):
    return run_cli(
        "evaluate", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
        *EIGHT_JOBS, *_tiny(model_dir), *QUIET, *tracking, env=env, timeout=600,
    )  # fmt: skip


def _assert_one_parent_eight_finished_children(runs: list, result) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" not in result.stderr
    parents, children = _split(runs)
    assert len(runs) == 9 and len(parents) == 1 and len(children) == 8
    assert [c.info.status for c in children] == ["FINISHED"] * 8
    assert parents[0].info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(int(c.data.tags["embsel.sweep.job_num"]) for c in children) == list(range(8))
    assert parents[0].data.params["sweep.launcher.n_jobs"] == "4"


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_joblib_sweep_on_a_fresh_sqlite_store(run_cli, tmp_path: Path, tiny_bert_dir: Path) -> None:
    result = _parallel_sweep(run_cli, tiny_bert_dir)
    _assert_one_parent_eight_finished_children(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"), result)
    children = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))[1]
    assert len({c.data.tags["embsel.pid"] for c in children}) > 1  # jobs ran in several worker processes


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_joblib_sweep_on_a_live_tracking_server(run_cli, server: str, tiny_bert_dir: Path) -> None:  # noqa: F811
    env = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    result = _parallel_sweep(run_cli, tiny_bert_dir, "tracking=server", f"tracking.uri={server}", env=env)
    _assert_one_parent_eight_finished_children(_runs(server), result)


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_under_mlflow_run_the_parent_is_the_run_mlflow_run_created(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    from tests.test_mlflow_run import _mlflow_run

    overrides = ["-m", "data=demo_sts,demo_pair_classification", *_tiny(tiny_bert_dir), *QUIET]
    proc, runs = _mlflow_run(tmp_path, " ".join(overrides))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (parent,), children = _split(runs)
    assert len(runs) == 3 and len(children) == 2
    assert parent.data.tags["mlflow.project.entryPoint"] == "evaluate"  # created by `mlflow run`
    assert parent.info.status == "FINISHED" and parent.data.params["overrides"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.tags["embsel.dataset"] for c in children) == ["demo_pair_classification", "demo_sts"]


# -- Optuna ----------------------------------------------------------------------------------

SEARCH_SPACE = ["model.max_seq_length=choice(8,16,32,64)", "model.pooling=choice(mean,cls,max)"]


def _optuna_args(model_dir: Path, *extra: str) -> list[str]:
    return [
        "evaluate", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.seed=0",
        *SEARCH_SPACE, *_tiny(model_dir), *QUIET, *extra,
    ]  # fmt: skip


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_optuna_sweep_is_six_child_runs_with_the_best_trial_on_the_parent(
    run_cli, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    result = run_cli(*_optuna_args(tiny_bert_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    (parent,), children = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert len(children) == 6 and {c.info.status for c in children} == {"FINISHED"}
    by_trial = {int(c.data.tags["embsel.sweep.trial_number"]): c for c in children}
    assert sorted(by_trial) == list(range(6))
    for child in children:  # the objective told to Optuna is the job's main score
        assert child.data.metrics["objective"] == child.data.metrics["main_score"]
    best = max(children, key=lambda c: c.data.metrics["objective"])
    assert parent.data.metrics["best_objective"] == best.data.metrics["objective"]
    assert parent.data.params["best_trial.model.pooling"] == best.data.params["model.pooling"]
    assert parent.data.params["best_trial.model.max_seq_length"] == best.data.params["model.max_seq_length"]
    assert parent.data.tags["optuna.best_trial_number"] == best.data.tags["embsel.sweep.trial_number"]


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_failed_trial_is_told_to_optuna_as_failed(run_cli, tmp_path: Path, tiny_bert_dir: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli(
        "evaluate", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=bad", "hydra.sweeper.sampler=random",
        "data.splits.test.path=choice(sts/test.csv,sts/missing.csv)", *_tiny(tiny_bert_dir), *QUIET,
    )  # fmt: skip
    trials = optuna.load_study(study_name="bad", storage=storage).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(trials) == 4 and failed, "seed 0 samples the missing file at least once"
    assert all(t.params["data.splits.test.path"] == "sts/missing.csv" for t in failed)
    assert all("missing.csv" in t.user_attrs["embsel.error"] and t.value is None for t in failed)
    assert result.returncode == 1
    (parent,), children = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert sum(c.info.status == "FAILED" for c in children) == len(failed)
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_failed"] == len(failed)


def _wait_for_complete_trials(storage: str, name: str, count: int, proc: subprocess.Popen) -> None:
    import optuna

    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).trials
        except KeyError:  # the study does not exist yet
            trials = []
        if sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"the sweep did not reach {count} trials (exit code {proc.poll()})")


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_killed_optuna_study_resumes_to_six_trials_not_nine(tmp_path: Path, tiny_bert_dir: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = _optuna_args(tiny_bert_dir, f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=resume")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "embsel_mlflow", *args]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, **quiet)
    _wait_for_complete_trials(storage, "resume", 3, proc)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: its running trial is stale
    proc.wait(timeout=60)

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="resume", storage=storage).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    interrupted = [t for t in trials if t.user_attrs.get("embsel.interrupted")]
    assert len(complete) == 6, [(t.number, t.state) for t in trials]
    assert len(trials) == 6 + len(interrupted) and len(interrupted) <= 1
    assert all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)
    # the second sweep ran only the missing trials, each a child of its parent
    parents, children = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    (second,) = [p for p in parents if p.info.status == "FINISHED"]
    resumed = [c for c in children if c.data.tags["mlflow.parentRunId"] == second.info.run_id]
    first = [c for c in children if c.data.tags["mlflow.parentRunId"] != second.info.run_id]
    done_before = sum(c.info.status == "FINISHED" for c in first)
    assert done_before >= 3 and len(resumed) == 6 - done_before
    assert {c.info.status for c in resumed} == {"FINISHED"}


# -- in-process reuse ------------------------------------------------------------------------


@pytest.fixture
def restore_logging():
    """Hydra configures the root logger of the process it runs in; put pytest's back."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_basic_launcher_sweep_loads_the_shared_model_once(
    tmp_path: Path, tiny_bert_dir: Path, restore_logging: None, capsys: pytest.CaptureFixture
) -> None:
    from embsel_mlflow.entrypoints import evaluate
    from embsel_mlflow.sweeps import reuse

    datasets = ["demo_sts", "demo_classification", "demo_pair_classification"]
    before = dict(reuse.loads)
    code = evaluate.main(["-m", f"data={','.join(datasets)}", *_tiny(tiny_bert_dir), *QUIET])
    assert code == 0, capsys.readouterr().err[-3000:]
    loaded = {kind: reuse.loads[kind] - before.get(kind, 0) for kind in ("model", "data")}
    assert loaded == {"model": 1, "data": 3}
    (parent,), children = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert sorted(c.data.tags["embsel.dataset"] for c in children) == sorted(datasets)
    assert {c.info.status for c in children} == {"FINISHED"} and parent.info.status == "FINISHED"
    # a later sweep (another parent run) loads again: a file edited in between is read afresh
    assert evaluate.main(["-m", "data=demo_sts", *_tiny(tiny_bert_dir), *QUIET]) == 0
    assert reuse.loads["model"] - before.get("model", 0) == 2


def test_slurm_launcher_config_composes_onto_submitit() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'embsel-mlflow[slurm]'")
    from hydra.utils import instantiate

    from embsel_mlflow.config.store import compose_config

    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    cfg = compose_config("evaluate", overrides, with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.timeout_min == 120 and launcher.array_parallelism == 16
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"


def signal_sweep(tmp_path: Path, args: list[str], child_status: str, signum: int) -> tuple[int, str, float]:
    """Run ``embsel <args>`` in ``tmp_path``; once a child run is ``child_status``, send ``signum``.

    Its exit code, its stderr and the seconds from the signal to its exit.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "embsel_mlflow", *args]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        runs = _runs(uri) if (tmp_path / "mlflow.db").exists() else []
        if any(r.info.status == child_status for r in _split(runs)[1]):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the sweep ended before a child was {child_status}"
    sent = time.monotonic()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr.decode(), time.monotonic() - sent


# 8 jobs: the signal comes with jobs still to run even when polling the store lags under load
EIGHT_SLOW_JOBS = [
    "data=demo_sts,demo_pair_classification,demo_classification,demo_clustering",
    "model.max_seq_length=16,32",
]


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_sigterm_closes_the_parent_and_the_running_child_killed(tmp_path: Path, tiny_bert_dir: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["evaluate", "-m", *EIGHT_SLOW_JOBS, *_tiny(tiny_bert_dir), *QUIET]
    code, stderr, _ = signal_sweep(tmp_path, args, "FINISHED", signal.SIGTERM)  # after the first child
    assert code == 143, stderr[-2000:]
    (parent,), children = _split(_runs(uri))
    assert parent.info.status == "KILLED" and "SIGTERM" in parent.data.tags["error"]
    assert "RUNNING" not in {c.info.status for c in children}
    assert len(children) < 8  # the sweep stopped


# -- the parent's summary: best job per task, description ------------------------------------


def _outcome(rows: list[tuple[str, str, str, float | None]]):
    """A SweepOutcome over jobs given as (task, main score name, status, main score)."""
    import pandas as pd

    from embsel_mlflow.sweeps.jobs import JOB_COLUMNS, SweepOutcome

    records = [
        {"job": i, "trial": None, "overrides": f"data=d{i} x=[a] (b)", "status": status, "task": task,
         "main_score_name": name, "main_score": score, "run_id": f"r{i}",
         "error": "" if status == "FINISHED" else "missing [test] (sts)"}
        for i, (task, name, status, score) in enumerate(rows)
    ]  # fmt: skip
    frame = pd.DataFrame(records, columns=JOB_COLUMNS)
    return SweepOutcome(frame.drop(columns="trial"))


def test_best_job_compares_only_scores_of_one_task_and_metric() -> None:
    one_task = _outcome([("sts", "spearman", "FINISHED", 0.6), ("sts", "spearman", "FINISHED", 0.7)])
    assert one_task.best is not None and one_task.best["job"] == 1
    mixed = _outcome(
        [
            ("sts", "spearman", "FINISHED", 0.73),
            ("classification", "accuracy", "FINISHED", 1.0),
            ("sts", "spearman", "FINISHED", 0.80),
            ("classification", "accuracy", "FAILED", None),
        ]
    )
    assert mixed.best is None  # accuracy 1.0 does not "beat" Spearman 0.73
    assert {key: row["job"] for key, row in mixed.bests.items()} == {
        ("sts", "spearman"): 2,
        ("classification", "accuracy"): 1,
    }
    line = mixed.summary_line()
    assert "best job" not in line and "one best per task" in line
    assert mixed.best_lines() == [
        "sts spearman: best job #2 (data=d2 x=[a] (b)) = 0.80000",
        "classification accuracy: best job #1 (data=d1 x=[a] (b)) = 1.00000",
    ]


def test_sweep_description_is_a_markdown_table_where_brackets_are_no_links() -> None:
    import re

    mixed = _outcome([("sts", "spearman", "FINISHED", 0.73), ("classification", "acc|uracy", "FAILED", None)])
    text = mixed.description()
    assert "| job | overrides | status | task, score | main score |" in text
    assert "| 0 | `data=d0 x=[a] (b)` | FINISHED | `sts spearman` | 0.73000 |" in text
    assert "| 1 | `data=d1 x=[a] (b)` | **FAILED** | `classification acc\\|uracy` |  |" in text
    # outside code spans no `[...] (...)` or `[...](...)` is left to render as a link
    outside = re.sub(r"`[^`]*`", "", text)
    assert not re.search(r"\[[^\]]*\]\s*\(", outside), outside
    assert "- **best** `sts spearman`: job #0 `data=d0 x=[a] (b)` = 0.73000" in text


def test_a_child_left_running_when_every_job_returned_is_closed_failed(store_uri: str) -> None:
    # a launcher's worker died mid-job (OOM, node lost): nothing else would close its run
    from embsel_mlflow.sweeps.callback import _close_orphans

    client = open_store(store_uri)
    experiment = client.create_experiment("sweep")
    parent = client.create_run(experiment).info.run_id
    tags = {"mlflow.parentRunId": parent}
    orphan = client.create_run(experiment, tags=tags).info.run_id
    done = client.create_run(experiment, tags=tags).info.run_id
    client.set_terminated(done, "FINISHED")
    _close_orphans(client, parent)
    assert client.get_run(orphan).info.status == "FAILED"
    assert "worker" in client.get_run(orphan).data.tags["error"]
    assert client.get_run(done).info.status == "FINISHED" and "error" not in client.get_run(done).data.tags
    assert client.get_run(parent).info.status == "RUNNING"  # the parent is the callback's to close
