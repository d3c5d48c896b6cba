"""Tracking to a real `mlflow server` on 127.0.0.1 (the HTTP path: REST logging, proxied artifacts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.mlflow_server import serve_mlflow


@pytest.fixture
def server(tmp_path: Path):
    with serve_mlflow(tmp_path) as url:
        yield url


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_evaluate_logs_everything_to_a_tracking_server(run_cli, server: str, tiny_st_dir: Path) -> None:
    env = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **os.environ}
    result = run_cli(
        "evaluate", "tracking=server", f"tracking.uri={server}", "tracking.experiment=remote",
        f"model.name_or_path={tiny_st_dir}", "model.name=tiny", "data=demo_pair_classification",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = MlflowClient(server)
    (run,) = client.search_runs([client.get_experiment_by_name("remote").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["main_score"] == run.data.metrics["test/cosine_ap"]
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["demo_pair_classification/test"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "overrides.yaml", "results.json", "per_item", "plots"} <= artifacts
