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
from embsel_mlflow.tracking.system_tags import provenance_tags


def one_line(exc: BaseException) -> str:
    """The message a user sees and the run's ``error`` tag."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EmbselError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _source_tags(entry_point: str) -> dict[str, str]:
    """Where the run came from; under ``mlflow run`` MLflow's own PROJECT source tags are kept."""
    tags = {"embsel.entry_point": entry_point, **provenance_tags()}
    if os.environ.get("MLFLOW_RUN_ID"):
        return tags
    tags.update(
        {
            "mlflow.source.name": f"embsel {entry_point}",
            "mlflow.source.type": "LOCAL",
            "mlflow.user": getpass.getuser(),
        }
    )
    if "embsel.source_commit" in tags:  # the UI's "Version" column: the embsel code that ran
        tags["mlflow.source.git.commit"] = tags["embsel.source_commit"]
    return tags


@contextlib.contextmanager
def tracked_run(tracking: TrackingConfig, *, entry_point: str, run_name: str) -> Iterator[RunLogger]:
    """Yield a logger for one run: the one ``mlflow run`` created (MLFLOW_RUN_ID) or a new one."""
    uri = resolve_tracking_uri(tracking.uri)
    client = open_store(uri)
    attached = os.environ.get("MLFLOW_RUN_ID")
    if attached:
        run_id = client.get_run(attached).info.run_id
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
        # The description (mlflow.note.content) is what the run page shows first.
        logger.set_tags({"error": reason, "mlflow.note.content": f"{status}: {reason}"})
    with contextlib.suppress(Exception):
        logger.client.set_terminated(logger.run_id, status)


def record_failed_run(
    tracking: TrackingConfig,
    *,
    entry_point: str,
    reason: str,
    run_name: str,
    overrides: list[str] | None = None,
) -> str | None:
    """Record a run that failed before it could start (e.g. the config did not compose).

    ``overrides`` (the command line as typed) are kept as overrides.yaml so the run shows what was asked.
    """
    from embsel_mlflow.tracking.config_logging import log_overrides

    try:
        with tracked_run(tracking, entry_point=entry_point, run_name=run_name) as logger:
            if overrides is not None:
                log_overrides(logger, overrides)
            raise _Recorded(reason)
    except _Recorded:
        return logger.run_id
    except Exception:  # the store itself is unusable: the console message still stands
        return None


class _Recorded(EmbselError):
    """Internal: carries a reason through tracked_run so it ends the run FAILED."""
