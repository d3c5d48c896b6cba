"""Tracking to a real `mlflow server` on 127.0.0.1 (the HTTP path: REST logging, proxied artifacts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server_artifacts"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"mlflow server did not start: {proc.stderr.read().decode()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


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
