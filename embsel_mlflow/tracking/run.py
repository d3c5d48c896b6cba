"""Run lifecycle: start (or attach to) exactly one run, and always end it.

A run that raises ends FAILED with an ``error`` tag holding the one-line reason; one
interrupted by Ctrl-C, SIGTERM or SIGHUP ends KILLED. A run whose process is SIGKILLed is
closed KILLED by the next embsel process on the host (see tracking.repair). Nothing is left RUNNING.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import posixpath
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.errors import ConfigError, EmbselError
from embsel_mlflow.tracking.experiment_ui import get_or_create_experiment
from embsel_mlflow.tracking.repair import close_orphaned_runs, process_tags
from embsel_mlflow.tracking.run_logger import RunLogger
from embsel_mlflow.tracking.secrets import mask_secrets, redact
from embsel_mlflow.tracking.store import (
    CLOSE_GRACE_S,
    is_server_away,
    is_store_failure,
    open_store,
    quick_store_calls,
    resolve_tracking_uri,
    store_error,
    validate_experiment_name,
)
from embsel_mlflow.tracking.system_tags import provenance_tags

if TYPE_CHECKING:
    from embsel_mlflow.tracking.repair import OrphanedRun

# Exit codes of a process ended by a signal, as a shell reports them (128 + signal number).
# Signals are IntEnums: a plain signal number finds its entry.
SIGNAL_EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def one_line(exc: BaseException) -> str:
    """The message a user sees and the run's ``error`` tag (secrets masked)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EmbselError):
        return redact(text)
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


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
def tracked_run(
    tracking: TrackingConfig,
    *,
    entry_point: str,
    run_name: str,
    parent_run_id: str | None = None,
    reopen_run_id: str | None = None,
) -> Iterator[RunLogger]:
    """Yield a logger for one run: the one ``mlflow run`` created (MLFLOW_RUN_ID) or a new one.

    With ``parent_run_id`` the run is always new, nested under that run in its experiment.
    ``reopen_run_id`` continues an ended run, RUNNING again with its error cleared: ``train.resume``,
    and ``monitor``'s long-lived parent run per monitored model.
    The store is checked before anything else (StoreError); runs of this host whose process is
    gone are closed KILLED first.
    """
    attached = None if parent_run_id or reopen_run_id else os.environ.get("MLFLOW_RUN_ID", "").strip()
    if not attached and not parent_run_id and not reopen_run_id:
        validate_experiment_name(tracking.experiment)
    uri = resolve_tracking_uri(tracking.uri)
    client = open_store(uri)
    with contextlib.suppress(Exception):  # best effort: a repair problem must not stop this run
        close_orphaned_runs(client)
    logger: RunLogger | None = None
    try:
        # A signal from here on closes the run, even one that lands while it is being created.
        with terminate_on_signals():
            run_id = _open_run(client, tracking, uri, run_name, attached, parent_run_id, reopen_run_id)
            logger = RunLogger(client, run_id)
            logger.set_tags(_source_tags(entry_point))
            # checked inside the run, so a bad key ends it FAILED with the reason
            logger.set_tags(validated_tags(tracking.tags))
            yield logger
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP via RunTerminated
        if logger is not None:
            _end(logger, "KILLED", exc.reason if isinstance(exc, RunTerminated) else INTERRUPTED)
            setattr(exc, _CLOSED_KILLED, True)
        raise
    except BaseException as exc:
        if logger is not None:
            _end(logger, "FAILED", one_line(exc))
        raise
    else:
        with signals_held():
            logger.client.set_terminated(logger.run_id, "FINISHED")


def _open_run(
    client,
    tracking: TrackingConfig,
    uri: str,
    run_name: str,
    attached: str | None,
    parent_run_id: str | None,
    reopen_run_id: str | None,
) -> str:
    """The id of the run ``tracked_run`` logs into: reopened, attached, nested or new."""
    if reopen_run_id:
        return reopen_run(client, reopen_run_id)
    if attached:
        run_id = _attachable_run(client, attached)
        RunLogger(client, run_id).set_tags(process_tags())
        return run_id
    if parent_run_id:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
        nested = {"mlflow.parentRunId": parent_run_id, **process_tags()}
        return client.create_run(experiment_id, run_name=run_name, tags=nested).info.run_id
    experiment_id = get_or_create_experiment(client, tracking.experiment, uri)
    # host and pid go in with the run itself, so a repair never sees the run without them
    return client.create_run(experiment_id, run_name=run_name, tags=process_tags()).info.run_id


# MLflow's rule for tag keys (mlflow.utils.validation), checked before a run exists so that a bad
# key is one line, not a traceback from the store halfway through opening the run.
_TAG_KEY = re.compile(r"^[/\w.\- :]+$")
MAX_TAG_KEY_LENGTH = 250
_CLOSED_KILLED = "embsel_closed_killed"  # set on a signal's exception once a run was closed KILLED


def validated_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """``tracking.tags`` with secrets masked; a ConfigError for a key MLflow would reject."""
    for key in tags:
        key = str(key)
        normalized = posixpath.normpath(key)
        if (
            not _TAG_KEY.match(key)
            or len(key) > MAX_TAG_KEY_LENGTH
            or normalized != key
            or normalized.startswith(("..", "/"))
        ):
            raise ConfigError(
                f"tracking.tags key {key!r} is not a valid MLflow tag key: use at most "
                f"{MAX_TAG_KEY_LENGTH} letters, digits, '_', '-', '.', ' ', ':' or '/' "
                "(no leading '/', no '..', no '//'), e.g. +tracking.tags.team=search"
            )
    return mask_secrets({str(k): v for k, v in tags.items()})


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """The console line for a run stopped by a signal: whether a run was closed KILLED or none existed."""
    reason = exc.reason if isinstance(exc, RunTerminated) else INTERRUPTED
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, _CLOSED_KILLED, False):
            return f"{reason}; the run was closed KILLED"
        seen = seen.__context__
    return f"{reason} before any run was started; nothing was recorded"


INTERRUPTED = "interrupted by the user (KeyboardInterrupt)"


def reopen_run(client, run_id: str) -> str:
    """Mark an ended run RUNNING again (a resumed training), without its error and failure note."""
    client.update_run(run_id, status="RUNNING")
    for key in ("error", "mlflow.note.content"):
        with contextlib.suppress(Exception):  # absent tags
            client.delete_tag(run_id, key)
    RunLogger(client, run_id).set_tags(process_tags())
    return run_id


def _attachable_run(client, run_id: str) -> str:
    """``run_id`` if it names a RUNNING run (the one ``mlflow run`` created); else a ConfigError.

    Logging into a finished run would log every metric twice or turn a good run FAILED.
    """
    fix = "unset MLFLOW_RUN_ID to start a new run (`mlflow run` sets it for the run it creates)"
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise ConfigError(f"MLFLOW_RUN_ID={run_id} names no run in this tracking store; {fix}") from exc
    if run.info.status != "RUNNING":
        raise ConfigError(
            f"MLFLOW_RUN_ID={run_id} names a {run.info.status} run; embsel logs only into a RUNNING run; "
            + fix
        )
    return run.info.run_id


class RunTerminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill`) or SIGHUP (the terminal closed) arrived while a run was open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.reason = f"terminated by {signal.Signals(signum).name}"

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(self.signum, 128 + self.signum)


# Libraries whose objects an exception raised in the middle of their code leaves broken: OmegaConf's
# flag_override cleanup then raises AttributeError in place of the interrupt, and Hydra turns that
# into a traceback and exit 1 (a signal that lands while Hydra composes a sweep's next job).
# SQLAlchemy (and alembic, which migrates through it): a KeyboardInterrupt inside a session's flush
# or close can leave a sqlite connection holding the write lock, so the writes that close the run
# KILLED then wait on "database is locked" until the process is killed (CI, stop 26).
_UNSAFE_TO_INTERRUPT = frozenset({"omegaconf", "sqlalchemy", "alembic"})
_REDELIVERY_S = 0.01
_MAX_REDELIVERIES = 500  # 5 s: a signal is never held longer than that


def _in_unsafe_code(frame: types.FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).partition(".")[0] in _UNSAFE_TO_INTERRUPT:
            return True
        frame = frame.f_back
    return False


def _redeliver_later(signum: int) -> None:
    timer = threading.Timer(_REDELIVERY_S, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into RunTerminated, and Ctrl-C into KeyboardInterrupt, so the run is
    closed (KILLED), not left RUNNING.

    A signal that lands inside OmegaConf is delivered again 10 ms later, until it lands where the
    exception can unwind cleanly; so is one whose exception Python dropped (raised in a finalizer
    or weakref callback, e.g. while the garbage collector frees a model). After the first SIGTERM
    or SIGHUP further ones are ignored: the run must get the time to close. A SIGINT the process
    ignores (started with nohup or `&`) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    terminating = (signal.SIGTERM, signal.SIGHUP)
    redeliveries = 0

    def _raise(signum: int, frame: types.FrameType | None) -> None:
        nonlocal redeliveries
        if redeliveries < _MAX_REDELIVERIES and _in_unsafe_code(frame):
            redeliveries += 1
            _redeliver_later(signum)
            return
        redeliveries = 0
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        for other in terminating:
            signal.signal(other, signal.SIG_IGN)
        raise RunTerminated(signum)

    def _unraisable(info: Any) -> None:
        # The handler ran inside a finalizer or a weakref callback (the garbage collector frees a
        # model: select collects after each candidate), where Python prints "Exception ignored"
        # and drops the exception: the job would go on. Deliver the signal again, to ordinary code.
        stop = info.exc_value
        if isinstance(stop, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            signum = stop.signum if isinstance(stop, RunTerminated) else signal.SIGINT
            if signum in terminating:  # _raise ignored further ones before raising
                for other in terminating:
                    signal.signal(other, _raise)
            _redeliver_later(signum)
            return
        unraisable_hook(info)

    signums = [*terminating]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signums.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, _raise) for signum in signums}
    unraisable_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        yield
    finally:
        sys.unraisablehook = unraisable_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While a run is being closed, Ctrl-C and termination signals wait, then arrive.

    A signal in the middle of the closing writes would leave the run RUNNING; ignoring it
    instead would lose the user's request to stop (a sweep would go on). So the first one is
    held and raised again once the block is done, under the handlers that were there before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def _hold(signum: int, frame: object) -> None:
        held.append(signum)

    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, _hold) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


def _end(logger: RunLogger, status: str, reason: str) -> None:
    """Close the run with a small budget: a broken store must neither hide the original error
    nor keep the process retrying for minutes.

    A tracking server that does not answer may be restarting: the close is tried again for
    ``CLOSE_GRACE_S``, so a restart leaves the run FAILED or KILLED, not RUNNING. A store that
    stays away leaves the run to ``embsel runs repair``.
    """
    shown = redact(reason)
    # The description (mlflow.note.content) is what the run page shows first.
    tags = {"error": shown, "mlflow.note.content": f"{status}: {shown}"}
    deadline = time.monotonic() + CLOSE_GRACE_S
    with signals_held(), quick_store_calls():
        while True:
            try:
                logger.set_tags(tags)
                logger.client.set_terminated(logger.run_id, status)
                return
            except Exception as exc:
                if not is_store_failure(exc):
                    # not the store (e.g. a tag it refuses): the status matters more than the tags
                    with contextlib.suppress(Exception):
                        logger.client.set_terminated(logger.run_id, status)
                    return
                if not is_server_away(exc) or time.monotonic() >= deadline:
                    return
            time.sleep(1)


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


def repair_runs(tracking_uri: str | None, *, dry_run: bool) -> tuple[list[OrphanedRun], str]:
    """``embsel runs repair``: close (``dry_run``: list) this host's RUNNING runs whose process is
    gone as KILLED; those runs, and "<host> in <store>" for the summary line."""
    import socket

    from embsel_mlflow.tracking.repair import find_orphaned_runs
    from embsel_mlflow.tracking.store import display_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = open_store(uri, must_exist=True)
    try:
        orphans = find_orphaned_runs(client) if dry_run else close_orphaned_runs(client)
    except Exception as exc:
        raise store_error(exc, uri) from exc
    return orphans, f"{socket.gethostname()} in {display_uri(uri)}"
