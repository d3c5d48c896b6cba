"""Real engines for the scale-out tests: a PostgreSQL server and a local Ray cluster on 127.0.0.1.

Each is started in a temporary directory by a context manager (or the fixtures in conftest.py),
on free ports, and stopped by its own process group: never `ray stop` or a system-wide service,
which would hit other clusters on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI runs as root, so drop to Debian's `postgres`.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def serve_postgres(tmp_path: Path, start_timeout: float = 60) -> Iterator[str]:
    """A PostgreSQL server (data in a fresh /tmp dir, its log in ``tmp_path``); yield a SQLAlchemy
    URI for MLflow's backend store.

    Skips (with the reason) where PostgreSQL is not installed; `.ci/run` installs it.
    """
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    if not (initdb and postgres):
        pytest.skip("PostgreSQL not installed (apt-get install postgresql; .ci/run does)")
    # The data dir lives outside pytest's basetemp: as root, `postgres` must reach it, and pytest
    # resets its tree to 0700 whenever another session starts.
    data = Path(tempfile.mkdtemp(prefix="embsel-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        _as_postgres_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = tmp_path / "postgres.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _as_postgres_user(
                [postgres, "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)]
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            probe = subprocess.run(
                [_postgres_bin("pg_isready") or "pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if probe.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"postgres did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        subprocess.run(
            [_postgres_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port),
             "-U", "postgres", "embsel"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/embsel"
    finally:
        _stop_group(proc)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(tmp_path: Path, workers: int = 1, cpus: int = 1, start_timeout: float = 120) -> Iterator[str]:
    """A local Ray cluster: a head and ``workers`` worker nodes on 127.0.0.1; yield its address.

    Each node is a `ray start --block` process in its own process group, stopped by signal at the
    end. The head has ``cpus`` CPUs too, so a task may land on any node.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip('ray is not installed (pip install -e ".[ray]")')
    # Ray's socket paths must stay short (AF_UNIX limit): a short temp dir of its own.
    temp = Path(f"/tmp/ray-{os.getpid()}-{free_port()}")
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = [
        "--block", f"--num-cpus={cpus}", "--num-gpus=0", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", "--object-store-memory=200000000",
    ]  # fmt: skip
    head_cmd = [
        str(ray_bin), "start", "--head", f"--port={port}", f"--temp-dir={temp}",
        "--include-dashboard=false", "--dashboard-agent-listen-port", str(free_port()),
        f"--ray-client-server-port={free_port()}", "--min-worker-port=0", "--max-worker-port=0",
        *common,
    ]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    # Ray >= 2.5x turns token auth on for `ray start` once ~/.ray/auth_token exists (any local
    # ray.init() writes one), and a client given an explicit address then cannot connect without it.
    env["RAY_AUTH_MODE"] = "disabled"
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "ray-logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with open(logs / "head.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    head_cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )
        _wait_for_nodes(address, 1, start_timeout, procs, logs)
        for i in range(workers):
            worker_cmd = [
                str(ray_bin), "start", f"--address={address}",
                "--dashboard-agent-listen-port", str(free_port()),
                "--min-worker-port=0", "--max-worker-port=0", *common,
            ]  # fmt: skip
            with open(logs / f"worker{i}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        worker_cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                )
        _wait_for_nodes(address, 1 + workers, start_timeout, procs, logs)
        yield address
    finally:
        # `ray start --block` takes ~15 s per node to stop on SIGTERM; its processes hold nothing
        # that outlives them here (the temp dir is removed below), so kill after a short grace.
        for proc in reversed(procs):
            _stop_group(proc, timeout=3)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, count: int, timeout: float, procs: list, logs: Path) -> None:
    """Block until the cluster at ``address`` reports ``count`` alive nodes."""
    script = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False);"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    deadline = time.monotonic() + timeout
    while True:
        if any(p.poll() is not None for p in procs):
            tails = "\n".join(f.read_text(errors="replace")[-1500:] for f in logs.glob("*.log"))
            pytest.fail(f"a ray node exited during start-up:\n{tails}")
        probe = subprocess.run(
            [sys.executable, "-c", script, address], capture_output=True, text=True, timeout=120
        )
        if probe.returncode == 0 and probe.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"ray cluster at {address} did not reach {count} nodes: {probe.stderr[-1500:]}")
        time.sleep(1)


def fresh_database(server_uri: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``server_uri`` (from `serve_postgres`);
    its SQLAlchemy URI. One per test keeps MLflow stores apart on one session server."""
    import psycopg

    base, _, _ = server_uri.rpartition("/")
    dsn = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"
