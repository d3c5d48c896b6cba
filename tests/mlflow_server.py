"""A real `mlflow server` on 127.0.0.1 for tests (the HTTP path and the UI)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_mlflow(
    tmp_path: Path,
    start_timeout: float = 180,
    backend_uri: str | None = None,
    workers: int = 1,
    port: int | None = None,
) -> Iterator[str]:
    """Run `mlflow server` over ``backend_uri`` (default: a sqlite store in ``tmp_path``); yield its URL.

    For the team's set-up, pass a PostgreSQL URI from `tests.engines.serve_postgres`. Artifacts go
    to ``tmp_path/server_artifacts`` (``--artifacts-destination``: the server proxies them). A
    ``port`` of an earlier server over the same store and folder restarts that server.

    Its output goes to ``tmp_path/server.log`` (a pipe nobody reads would fill and stall it).
    """
    port = port or _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--backend-store-uri", backend_uri or f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server_artifacts"),
    ]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "ab") as out:
        # No job-execution workers (MLflow's GenAI jobs; embsel runs none): on a busy machine their
        # start-up held the server's first answers for a minute.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not start: {log.read_text(errors='replace')[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
