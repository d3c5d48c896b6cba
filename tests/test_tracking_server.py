"""The team's tracking server: `mlflow server` on PostgreSQL with ``--artifacts-destination``.

Real engines only: a PostgreSQL server in a temp dir (`postgres_uri`), a fresh database and an
`mlflow server` over it per test (`tracking_server`), a local Ray cluster (`ray_address`). Also the
store faults of the commands that read a store, and of a run's opening (tag keys, signals).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.cli_harness import assert_one_line_error, invoke
from tests.mlflow_server import serve_mlflow

NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
QUIET = ["evaluation.show_progress=false", "tracking.log_per_item=false"]


def _tiny(model_dir: Path) -> list[str]:
    return ["model=transformers_mean", f"model.name_or_path={model_dir}", "model.name=tiny"]


def _server(url: str) -> list[str]:
    return ["tracking=server", f"tracking.uri={url}"]


def _all_runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


# -- a store that does not exist: refused, nothing created -----------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "repair"],
        ["runs", "repair", "--dry-run"],
        ["compare", "--experiment", "embsel"],
        ["rerun", "0123456789abcdef"],
    ],
    ids=["repair", "repair-dry-run", "compare", "rerun"],
)
def test_commands_reading_a_missing_store_refuse_it_and_create_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "nowhere" / "mlflow.db"
    result = invoke(*args, "--tracking-uri", f"sqlite:///{missing}", cwd=tmp_path)
    assert str(missing) in assert_one_line_error(result, "no tracking store")
    assert not missing.parent.exists()
    # the default store (./mlflow.db) is not created either
    result = invoke(*args, cwd=tmp_path)
    assert_one_line_error(result, "no tracking store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embsel-cache"]


def test_runs_repair_of_an_existing_store_still_works(tmp_path: Path, store_uri: str) -> None:
    from embsel_mlflow.tracking.store import open_store

    open_store(store_uri)  # creates it
    result = invoke("runs", "repair", "--tracking-uri", store_uri, cwd=tmp_path)
    assert result.returncode == 0 and "0 run(s)" in result.stderr


# -- a run's opening: tag keys, signals ---------------------------------------------------------


def test_a_tag_key_mlflow_rejects_is_one_line_and_a_failed_run(tmp_path: Path, store_uri: str) -> None:
    result = invoke("evaluate", f"tracking.uri={store_uri}", "+tracking.tags.x$y=1", cwd=tmp_path)
    message = assert_one_line_error(result, "tracking.tags key 'x$y'")
    (run,) = _all_runs(store_uri)
    assert run.info.status == "FAILED" and run.data.tags["error"] == message
    assert "x$y" not in run.data.tags


def test_the_signal_line_says_whether_a_run_was_closed(store_uri: str) -> None:
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.tracking.run import RunTerminated, interrupted_line, tracked_run

    before = RunTerminated(signal.SIGTERM)
    assert (
        interrupted_line(before) == "terminated by SIGTERM before any run was started; nothing was recorded"
    )
    assert "before any run" in interrupted_line(KeyboardInterrupt())
    tracking = TrackingConfig(uri=store_uri)
    with (
        pytest.raises(KeyboardInterrupt) as caught,
        tracked_run(tracking, entry_point="evaluate", run_name="r"),
    ):
        raise KeyboardInterrupt
    assert interrupted_line(caught.value).endswith("; the run was closed KILLED")
    (run,) = _all_runs(store_uri)
    assert run.info.status == "KILLED"


# -- the PostgreSQL-backed server ----------------------------------------------------------------


@pytest.mark.slow  # a PostgreSQL server, an mlflow server and two CLI processes
def test_evaluate_and_select_with_artifacts_and_models_on_a_postgres_server(
    run_cli, tracking_server: str, tiny_bert_dir: Path, tiny_st_dir: Path, tmp_path: Path
) -> None:
    result = run_cli("evaluate", *_server(tracking_server), *_tiny(tiny_bert_dir), *QUIET, "data=demo_sts",
                     env=NO_PROXY)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_cli(
        "select", *_server(tracking_server), "datasets=[demo_sts]", "candidates=[transformers_mean,e5_base]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "candidates.transformers_mean.name=tiny_mean",
        f"candidates.e5_base.name_or_path={tiny_st_dir}", "candidates.e5_base.name=tiny_e5",
        "evaluation.show_progress=false", "select.resamples=100", "select.efficiency.sample_size=16",
        "select.efficiency.latency_queries=4", "select.register=pg_champion", env=NO_PROXY, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_server)
    runs = _all_runs(tracking_server)
    assert runs and {r.info.status for r in runs} == {"FINISHED"}
    evaluate = next(r for r in runs if r.data.tags["embsel.entry_point"] == "evaluate")
    assert evaluate.data.metrics["main_score"] == evaluate.data.metrics["test/cosine_spearman"]
    # artifacts go through the server (proxied) into --artifacts-destination
    assert evaluate.info.artifact_uri.startswith("mlflow-artifacts:")
    assert {"config.yaml", "results.json"} <= {a.path for a in client.list_artifacts(evaluate.info.run_id)}
    stored = tmp_path / "server" / "server_artifacts"
    assert list(stored.rglob("results.json")), "no artifact reached --artifacts-destination"
    select = next(
        r
        for r in runs
        if r.data.tags["embsel.entry_point"] == "select" and "mlflow.parentRunId" not in r.data.tags
    )
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == select.info.run_id]
    assert len(children) == 2
    # the champion, registered in the PostgreSQL store, loads back through the server
    version = client.get_model_version_by_alias("pg_champion", "champion")
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_server)
    try:
        model = mlflow.pyfunc.load_model("models:/pg_champion@champion")
        embeddings = model.predict(["a short text", "another one"])
    finally:
        mlflow.set_tracking_uri(None)
    assert len(embeddings) == 2 and version.run_id


def _assert_finished_with_every_metric(children: list, reference) -> None:
    expected = set(reference.data.metrics)
    assert "main_score" in expected
    assert [c.info.status for c in children] == ["FINISHED"] * len(children)
    for child in children:
        assert set(child.data.metrics) == expected, sorted(expected - set(child.data.metrics))
        assert child.data.metrics["main_score"] == pytest.approx(
            reference.data.metrics["main_score"], abs=1e-6
        )


@pytest.mark.slow  # eight processes writing at once
def test_eight_parallel_joblib_jobs_lose_no_run_and_no_metric(
    run_cli, tracking_server: str, tiny_bert_dir: Path
) -> None:
    args = [*_server(tracking_server), *_tiny(tiny_bert_dir), *QUIET, "data=demo_sts"]
    result = run_cli("evaluate", *args, "tracking.experiment=reference", env=NO_PROXY)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_server)
    (reference,) = client.search_runs([client.get_experiment_by_name("reference").experiment_id])
    result = run_cli(
        "evaluate", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8", *args,
        "model.batch_size=2,3,4,5,6,7,8,9", env=NO_PROXY, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("embsel").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 9 and len(children) == 8
    assert len({c.data.tags["embsel.pid"] for c in children}) > 1  # several writers
    _assert_finished_with_every_metric(children, reference)


@pytest.mark.slow  # a Ray cluster and four evaluate processes
def test_parallel_jobs_from_ray_workers_lose_no_run_and_no_metric(
    run_cli, tracking_server: str, ray_address: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    import ray

    args = [*_server(tracking_server), *_tiny(tiny_bert_dir), *QUIET, "data=demo_sts"]
    result = run_cli("evaluate", *args, "tracking.experiment=reference", env=NO_PROXY)
    assert result.returncode == 0, result.stderr[-3000:]
    env = {**os.environ, **NO_PROXY, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}

    def evaluate_job(args: list[str], env: dict[str, str], cwd: str) -> tuple[int, str, str]:
        """One `embsel evaluate` job as a plain Ray task, in its own process on the node that runs it
        (defined here, so Ray ships it by value: the workers need not import the tests package)."""
        import subprocess
        import sys

        import ray

        proc = subprocess.run(
            [sys.executable, "-m", "embsel_mlflow", "evaluate", *args],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        return proc.returncode, proc.stderr[-2000:], ray.get_runtime_context().get_node_id()

    ray.init(address=ray_address, logging_level="ERROR", log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(evaluate_job)
        jobs = [
            task.remote([*args, "tracking.experiment=ray", f"model.batch_size={b}"], env, str(tmp_path))
            for b in (2, 3, 4, 5)
        ]
        outcomes = ray.get(jobs, timeout=900)
    finally:
        ray.shutdown()
    assert [code for code, _, _ in outcomes] == [0] * 4, outcomes
    assert len({node for _, _, node in outcomes}) == 2  # both nodes of the cluster wrote
    client = MlflowClient(tracking_server)
    (reference,) = client.search_runs([client.get_experiment_by_name("reference").experiment_id])
    runs = client.search_runs([client.get_experiment_by_name("ray").experiment_id])
    assert len(runs) == 4
    _assert_finished_with_every_metric(runs, reference)


@pytest.mark.slow  # a server stopped and started again while a sweep runs
def test_a_server_restart_mid_sweep_leaves_no_run_running(
    postgres_uri: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """The server away for as long as it takes to stop and start (12 s in one run here):
    a request in flight is retried (~15 s), a failed run's close waits 25 s, the next job waits
    40 s for the server. An outage longer than that (65 s on this machine under heavy load) leaves
    the job in flight RUNNING, for `embsel runs repair`."""
    from tests.engines import free_port, fresh_database

    backend = fresh_database(postgres_uri, f"restart_{os.getpid()}_{free_port()}")
    port = free_port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    env = {**os.environ, **NO_PROXY, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    url = f"http://127.0.0.1:{port}"
    jobs = 6
    with serve_mlflow(server_dir, backend_uri=backend, port=port):
        sweep = subprocess.Popen(
            [sys.executable, "-m", "embsel_mlflow", "evaluate", "-m", *_server(url), *_tiny(tiny_bert_dir),
             *QUIET, "data=demo_sts,demo_pair_classification", "model.batch_size=2,3,4"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while sweep.poll() is None and time.monotonic() < deadline:
            children = [r for r in _all_runs(url) if "mlflow.parentRunId" in r.data.tags]
            if len(children) >= 2:  # stop it with jobs done, one in flight and others to come
                break
            time.sleep(0.5)
        assert sweep.poll() is None, "the sweep ended before the server could be restarted"
    stopped = time.monotonic()
    with serve_mlflow(server_dir, backend_uri=backend, port=port):
        print(f"server away for {time.monotonic() - stopped:.1f} s")
        _, err = sweep.communicate(timeout=600)
        runs = _all_runs(url)
    assert sweep.returncode in (0, 1), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    statuses = {r.info.run_id: r.info.status for r in runs}
    print("statuses:", sorted(statuses.values()), [r.data.tags.get("error") for r in runs])
    assert "RUNNING" not in statuses.values(), statuses
    assert len(children) == jobs, statuses
    for run in runs:
        if run.info.status == "FAILED":
            assert run.data.tags.get("error") and "\n" not in run.data.tags["error"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert finished and all("main_score" in c.data.metrics for c in finished)
    assert sweep.returncode == (0 if len(finished) == jobs else 1)
