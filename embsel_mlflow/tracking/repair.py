"""Runs whose process is gone: find them and close them KILLED.

SIGKILL, a power cut or an OOM kill give a process no chance to end its run, so every run
records where it runs (host, pid and the process's start time, which tells a reused pid from
the original). Any later embsel process on the same host, or ``embsel runs repair``, closes
RUNNING runs of this host whose process no longer exists.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

HOST_TAG = "embsel.host"
PID_TAG = "embsel.pid"
PROCESS_START_TAG = "embsel.process_start"
# Containers on one host may share its name but not its pids: a pid is only judged from the
# same pid namespace.
PID_NAMESPACE_TAG = "embsel.pid_namespace"


def pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot), None where unknown.

    Together with the pid it names one process: a pid reused after a crash has another start.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_tags() -> dict[str, str]:
    """Tags that name this process, set on every run when it is created or attached."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    start, namespace = process_start_time(pid), pid_namespace()
    if start is not None:
        tags[PROCESS_START_TAG] = start
    if namespace is not None:
        tags[PID_NAMESPACE_TAG] = namespace
    return tags


def process_is_alive(pid: int, start: str | None) -> bool:
    """Whether the process that recorded (``pid``, ``start``) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if start is None:
        return True
    current = process_start_time(pid)
    return current is None or current == start


@dataclass
class OrphanedRun:
    run_id: str
    experiment_id: str
    run_name: str
    pid: int


def find_orphaned_runs(client: MlflowClient, host: str | None = None) -> list[OrphanedRun]:
    """RUNNING runs recorded by a process of ``host`` (default: this one) that no longer exists."""
    host = host or socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    escaped = host.replace("'", "\\'")
    runs = client.search_runs(
        experiments,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{escaped}'",
        max_results=1000,
    )
    namespace = pid_namespace()
    return [orphan for run in runs if (orphan := _orphan(run, namespace)) is not None]


def _orphan(run: Run, namespace: str | None) -> OrphanedRun | None:
    """``run`` as an orphan when a process of this host (and pid namespace) recorded it and is gone."""
    tags = run.data.tags
    pid_text = tags.get(PID_TAG, "")
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return None
    if tags.get(PID_NAMESPACE_TAG) != namespace:
        return None  # another container: its pids mean nothing here
    if process_is_alive(int(pid_text), tags.get(PROCESS_START_TAG)):
        return None
    return OrphanedRun(run.info.run_id, run.info.experiment_id, run.info.run_name or "", int(pid_text))


def close_orphaned_runs(client: MlflowClient, host: str | None = None) -> list[OrphanedRun]:
    """Mark every orphaned run KILLED, with the reason in its ``error`` tag; returns them."""
    host = host or socket.gethostname()
    orphans = find_orphaned_runs(client, host)
    for orphan in orphans:
        _close_killed(client, orphan, host)
    return orphans


def close_if_orphaned(client: MlflowClient, run: Run) -> bool:
    """Close ``run`` KILLED when it is RUNNING but its process on this host is gone; whether it did.

    What a resume of a SIGKILLed run needs first: the run it continues must have ended.
    """
    host = socket.gethostname()
    if run.info.status != "RUNNING" or run.data.tags.get(HOST_TAG) != host:
        return False
    orphan = _orphan(run, pid_namespace())
    if orphan is None:
        return False
    _close_killed(client, orphan, host)
    return True


def _close_killed(client: MlflowClient, orphan: OrphanedRun, host: str) -> None:
    reason = (
        f"process {orphan.pid} on {host} ended without closing this run (killed or crashed); "
        "closed KILLED by embsel"
    )
    client.set_tag(orphan.run_id, "error", reason)
    client.set_terminated(orphan.run_id, "KILLED")
