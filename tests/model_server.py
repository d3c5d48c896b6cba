"""An MLflow model in another process: loaded with pyfunc in a fresh interpreter, or served with
`mlflow models serve --env-manager local` on 127.0.0.1 and asked once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_process_embeddings(model_uri: str, texts: list[str], *, cwd: Path, tracking_uri: str) -> np.ndarray:
    """``mlflow.pyfunc.load_model(model_uri).predict(texts)`` in a fresh interpreter (nothing cached)."""
    code = (
        "import json, mlflow, numpy as np\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        f"print(json.dumps(np.asarray(model.predict({texts!r})).tolist()))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]), dtype=np.float32)


def served_embeddings(
    model_uri: str, texts: list[str], *, cwd: Path, tracking_uri: str, start_timeout: float = 300
) -> np.ndarray:
    """POST ``texts`` to /invocations of a real server for ``model_uri``; the embeddings it answers."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    # its own process group: the CLI starts a uvicorn child that must go down with it
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": texts}).encode(),
            headers={"Content-Type": "application/json"},
        )
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    _stop(server)  # first: reading stderr waits for every holder of the pipe to exit
                    assert server.stderr is not None
                    raise AssertionError(
                        f"server did not answer: {server.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.5)
    finally:
        _stop(server)
    return np.asarray(body["predictions"])


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
