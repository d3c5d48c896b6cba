"""Run lifecycle: start (or attach to) exactly one run, and always end it.

A run that raises ends FAILED with an ``error`` tag holding the one-line reason; one
interrupted by Ctrl-C ends KILLED. Nothing is left RUNNING.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import threading
from collections.abc import Iterator

from embsel_mlflow.config.schema import TrackingConfig
from embsel_mlflow.errors import EmbselError
from embsel_mlflow.tracking.run_logger import RunLogger
from embsel_mlflow.tracking.store import get_or_create_experiment, open_store, resolve_tracking_uri
from embsel_mlflow.tracking.system_tags import git_tags


def one_line(exc: BaseException) -> str:
    """The message a user sees and the run's ``error`` tag."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EmbselError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _source_tags(entry_point: str) -> dict[str, str]:
    tags = {
        "mlflow.source.name": f"embsel {entry_point}",
        "mlflow.source.type": "LOCAL",
        "mlflow.user": getpass.getuser(),
        "embsel.entry_point": entry_point,
    }
    git = git_tags()
    if "embsel.git_commit" in git:
        tags["mlflow.source.git.commit"] = git["embsel.git_commit"]
    return {**tags, **git}


@contextlib.contextmanager
def tracked_run(
    tracking: TrackingConfig, *, entry_point: str, run_name: str, parent_run_id: str | None = None
) -> Iterator[RunLogger]:
    """Yield a logger for one run: the one ``mlflow run`` created (MLFLOW_RUN_ID) or a new one.

    With ``parent_run_id`` the run is always new, nested under that run in its experiment.
    """
    uri = resolve_tracking_uri(tracking.uri)
    client = open_store(uri)
    attached = None if parent_run_id else os.environ.get("MLFLOW_RUN_ID")
    if attached:
        run_id = client.get_run(attached).info.run_id
    elif parent_run_id:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
        nested = {"mlflow.parentRunId": parent_run_id}
        run_id = client.create_run(experiment_id, run_name=run_name, tags=nested).info.run_id
    else:
        experiment_id = get_or_create_experiment(client, tracking.experiment, uri)
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    logger = RunLogger(client, run_id)
    try:
        with _sigterm_raises():
            logger.set_tags({**_source_tags(entry_point), **tracking.tags})
            yield logger
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM via RunTerminated
        terminated = isinstance(exc, RunTerminated)
        _end(
            logger,
            "KILLED",
            "terminated by SIGTERM" if terminated else "interrupted by the user (KeyboardInterrupt)",
        )
        raise
    except BaseException as exc:
        _end(logger, "FAILED", one_line(exc))
        raise
    else:
        logger.client.set_terminated(run_id, "FINISHED")


class RunTerminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill`) arrived while a run was open."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception so the run is closed (KILLED) instead of left RUNNING."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def _raise(signum: int, frame: object) -> None:
        raise RunTerminated

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end(logger: RunLogger, status: str, reason: str) -> None:
    # Best effort: a broken store must not hide the original error.
    with contextlib.suppress(Exception):
        logger.set_tags({"error": reason})
    with contextlib.suppress(Exception):
        logger.client.set_terminated(logger.run_id, status)


def record_failed_run(
    tracking: TrackingConfig, *, entry_point: str, reason: str, run_name: str
) -> str | None:
    """Record a run that failed before it could start (e.g. the config did not compose)."""
    try:
        with tracked_run(tracking, entry_point=entry_point, run_name=run_name) as logger:
            raise _Recorded(reason)
    except _Recorded:
        return logger.run_id
    except Exception:  # the store itself is unusable: the console message still stands
        return None


class _Recorded(EmbselError):
    """Internal: carries a reason through tracked_run so it ends the run FAILED."""
