"""`embsel <step> -m hydra/launcher=ray`: sweeps as Ray tasks, with the other launchers' semantics.

A real local Ray cluster (the `ray_address` fixture: a head and one worker node, 1 CPU each) and,
for the bar, a real `mlflow server` on a real PostgreSQL database.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from embsel_mlflow.sweeps.ray_launcher import LOCAL_OBJECT_STORE_BYTES, init_kwargs
from tests.conftest import REPO_ROOT
from tests.test_sweeps import QUIET, _jobs_csv, _runs, _split, _tiny, signal_sweep
from tests.test_sweeps import four_roots as four_roots  # the fixture: four data roots, one without its file

LOCAL = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _on_ray(address: str) -> list[str]:
    """The launcher on the test cluster; its workers import this checkout (CI: the editable install)."""
    return [
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={address}",
        f"+hydra.launcher.ray.init.runtime_env.env_vars.PYTHONPATH={REPO_ROOT}",
    ]


def _fresh_database(postgres_uri: str, name: str) -> str:
    """A new database on the session's PostgreSQL server: each test's store starts empty."""
    from tests.engines import _postgres_bin

    host_port = postgres_uri.rsplit("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    createdb = _postgres_bin("createdb") or "createdb"
    command = [createdb, "-h", host, "-p", port, "-U", "postgres", name]
    subprocess.run(command, check=True, capture_output=True)
    return postgres_uri.rsplit("/", 1)[0] + f"/{name}"


def test_connecting_to_a_running_cluster_passes_no_object_store_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # ray.init refuses object_store_memory when it connects; hydra-ray-launcher always sets it
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert init_kwargs({"address": "10.0.0.1:6379"}) == {"address": "10.0.0.1:6379"}
    local = {"object_store_memory": LOCAL_OBJECT_STORE_BYTES, "address": None}
    assert init_kwargs({"address": None}) == local
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert init_kwargs({"address": None}) == {"address": None}


def test_ray_launcher_config_composes_with_per_job_resources() -> None:
    from hydra.core.plugins import Plugins

    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.sweeps.plugins import register_hydra_plugins

    register_hydra_plugins()
    resources = ["hydra.launcher.ray.remote.num_gpus=1", "hydra.launcher.ray.remote.num_cpus=4"]
    overrides = ["hydra/launcher=ray", *resources]
    launcher = compose_config("evaluate", overrides, with_hydra=True).hydra.launcher
    assert dict(launcher.ray.remote) == {"num_cpus": 4, "num_gpus": 1, "max_retries": 0}
    assert launcher.ray.init.address is None  # $RAY_ADDRESS, else a Ray for the sweep alone
    plugin = Plugins.instance().instantiate_launcher  # Hydra accepts our class as a launcher plugin
    assert callable(plugin) and launcher._target_ == "hydra_plugins.embsel_sweepers.launchers.RayLauncher"


@pytest.mark.slow  # a Ray cluster, PostgreSQL and an mlflow server: about a minute
def test_ray_sweep_with_a_bad_job_on_a_postgres_backed_server(
    run_cli, tmp_path: Path, tiny_bert_dir: Path, four_roots: list[str], ray_address: str, postgres_uri: str
) -> None:
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    backend = _fresh_database(postgres_uri, "ray_sweep_bar")
    from tests.mlflow_server import serve_mlflow

    with serve_mlflow(server_dir, backend_uri=backend) as url:
        result = run_cli(
            "evaluate", "-m", *_on_ray(ray_address), f"data.root={','.join(four_roots)}",
            "data.splits.test.path=test.csv", *_tiny(tiny_bert_dir), *QUIET, "tracking=server",
            f"tracking.uri={url}", env=LOCAL, timeout=600,
        )  # fmt: skip
        runs = _runs(url)
        jobs = _jobs_csv(url, _split(runs)[0][0].info.run_id) if _split(runs)[0] else []
    assert result.returncode == 1, result.stderr[-3000:]
    (parent,), children = _split(runs)
    assert len(runs) == 5
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert "missing" in failed.data.tags["error"] and "test.csv" in failed.data.tags["error"]
    assert parent.info.status == "FAILED" and "1 of 4 jobs failed" in parent.data.tags["error"]
    assert [row["status"] for row in jobs] == ["FINISHED", "FINISHED", "FAILED", "FINISHED"]
    # the jobs ran in Ray workers, not in the process that ran the sweep
    assert parent.data.params["sweep.launcher._target_"].endswith("embsel_sweepers.launchers.RayLauncher")
    assert parent.data.params["sweep.launcher.ray.init.address"] == ray_address
    assert parent.data.tags["embsel.pid"] not in {c.data.tags["embsel.pid"] for c in children}
    finished = {c.info.run_id: c.data.metrics["main_score"] for c in children if c.info.status == "FINISHED"}
    assert {row["run_id"]: float(row["main_score"]) for row in jobs if row["main_score"]} == finished
    assert "sweep: 3 of 4 jobs finished, 1 failed" in result.stdout
    assert f"error: {failed.data.tags['error']}" in result.stderr  # the job's one line reaches the console


# 8 jobs of several seconds each (1,000 classification experiments): a child seen RUNNING is still
# running when the cancel reaches it. The demo jobs of the other tests can finish in that window.
EIGHT_LONG_JOBS = ["data=demo_classification", "evaluation.n_experiments=1000", "evaluation.seed=range(1,9)"]


@pytest.mark.slow  # a Ray cluster and eight jobs: about a minute
def test_ctrl_c_cancels_the_ray_tasks_and_closes_the_running_children_killed(
    tmp_path: Path, tiny_bert_dir: Path, ray_address: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["evaluate", "-m", *_on_ray(ray_address), *EIGHT_LONG_JOBS, *_tiny(tiny_bert_dir), *QUIET]
    code, stderr, took = signal_sweep(tmp_path, [*args, f"tracking.uri={uri}"], "RUNNING", signal.SIGINT)
    assert code == 130, stderr[-3000:]
    assert took < 60, f"Ctrl-C took {took:.0f} s"
    (parent,), children = _split(_runs(uri))
    assert parent.info.status == "KILLED"
    statuses = [c.info.status for c in children]
    assert "RUNNING" not in statuses and "KILLED" in statuses, statuses
    assert len(children) < 8  # the queued jobs never started
    time.sleep(10)  # cancelled, not orphaned: no job starts or changes after the sweep ended
    assert sorted((c.info.run_id, c.info.status) for c in _split(_runs(uri))[1]) == sorted(
        (c.info.run_id, c.info.status) for c in children
    )
