"""Tracking store resolution, checks and one-time initialisation.

``open_store`` is the one way in: it checks the store once, quickly, before any data or model
is loaded, so an unreachable server, an unwritable sqlite path or a damaged database gives one
line within seconds instead of minutes of retries and a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ConfigError, StoreError
from embsel_mlflow.tracking.secrets import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow 3's own default: a sqlite store in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# MLflow retries HTTP requests for about 4 minutes (7 retries, backoff factor 2, 120 s timeout).
# embsel probes once with no retry, so a server that is not there is one line within seconds.
# Once a run is open, the server was there: a failed request is retried for about 15 s (sleeps of
# 0, 2, 4 and 8 s), enough to ride out a restart of the server, not minutes. A user's own
# MLFLOW_HTTP_REQUEST_* settings win.
# Closing a run after a failure starts with one quick request (the store may have just failed);
# a run that cannot be closed because the server is away is retried for CLOSE_GRACE_S.
HTTP_QUICK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
HTTP_RUN_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
CLOSE_GRACE_S = 25.0
# A job of a sweep that finds the server away waits this long for it (see _probe).
REACHED_GRACE_S = 40.0
MAX_EXPERIMENT_NAME_LENGTH = 256
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# errnos that mean "this place cannot be written", whoever asks
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


def resolve_tracking_uri(configured: str | None) -> str:
    """Config first, then MLFLOW_TRACKING_URI, then sqlite:///mlflow.db; sqlite paths made absolute.

    Absolute, because MLflow caches one store per URI string: ``sqlite:///mlflow.db`` opened
    from two working directories in one process would be the first directory's database.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    db = sqlite_path(uri)
    if db is None or db.is_absolute():
        return uri
    query = uri.partition("?")[1] + uri.partition("?")[2]
    return f"sqlite:///{db.absolute()}{query}"


def display_uri(uri: str) -> str:
    """``uri`` as it may be shown or stored: ``user:password@`` and secret query values masked."""
    return redact(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :].split("?", 1)[0]).expanduser()


def validate_experiment_name(name: object) -> str:
    """``name`` if it is a usable experiment name, else a ConfigError naming the fix."""
    fix = "set tracking.experiment=<name>, e.g. tracking.experiment=embsel"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"tracking.experiment is empty; {fix}")
    if _CONTROL_CHARS.search(name):
        raise ConfigError(f"tracking.experiment {name!r} contains control characters; {fix}")
    if name != name.strip():
        raise ConfigError(f"tracking.experiment {name!r} has leading or trailing spaces; {fix}")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ConfigError(
            f"tracking.experiment is {len(name)} characters long "
            f"(at most {MAX_EXPERIMENT_NAME_LENGTH}); {fix}"
        )
    return name


def experiment_dir_name(name: str) -> str:
    """A safe folder name for experiment ``name``: one path part, never ``..`` or absolute.

    Names that are already safe are kept as they are (``mlruns/embsel``); others are cleaned and
    get a short hash so that ``a/b`` and ``a_b`` do not share a folder.
    """
    cleaned = _UNSAFE_PATH_CHARS.sub("_", name).strip("._") or "experiment"
    if cleaned == name:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{cleaned[:80]}-{digest}"


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live beside the database file, in ./mlruns/<experiment>.

    For servers and other stores the server decides (None).
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    root = db.resolve().parent / "mlruns"
    location = (root / experiment_dir_name(validate_experiment_name(experiment))).resolve()
    if not location.is_relative_to(root):  # cannot happen with experiment_dir_name; keep it that way
        raise ConfigError(f"tracking.experiment {experiment!r} would write outside {root}")
    return location.as_uri()


def lock_path(db: Path) -> Path:
    """The store-creation lock: a hidden file beside the database.

    Beside the store, not in the temp dir: processes with different TMPDIRs (cluster jobs)
    must see each other's lock. A separate file, not the database: sqlite's own POSIX locks
    on the database would be released when our descriptor closes.
    """
    return db.parent / f".{db.name}.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quiet_store_logs() -> None:
    """MLflow and alembic announce schema migrations at INFO; the console is for embsel's progress.

    MLFLOW_LOGGING_LEVEL, when set, still wins.
    """
    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def open_store(uri: str, *, must_exist: bool = False) -> MlflowClient:
    """A client for ``uri``, checked once and with its schema created; StoreError if unusable.

    Several processes opening a fresh sqlite store at once race on the schema migration, so
    the first touch of a sqlite store is serialised with a lock file beside it.
    ``must_exist``: the commands that read a store (compare, rerun, runs repair) refuse a sqlite
    store that is not there instead of creating an empty one.
    """
    from mlflow import MlflowClient

    quiet_store_logs()
    db = sqlite_path(uri)
    if must_exist:
        _check_exists(db, uri)
    if db is None:
        if uri.startswith(("http://", "https://")):
            for key, value in HTTP_RUN_ENV.items():
                os.environ.setdefault(key, value)
        client = MlflowClient(tracking_uri=uri)
        _probe(client, uri)
        return client
    _ensure_writable(db, uri)
    with _file_lock(lock_path(db)):
        _check_not_damaged(db, uri)
        client = MlflowClient(tracking_uri=uri)
        _probe(client, uri)
    return client


@contextlib.contextmanager
def quick_store_calls() -> Iterator[None]:
    """HTTP calls inside answer within seconds or fail: no retry, a short timeout (unless the
    user set MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT, which win)."""
    saved = {k: os.environ.get(k) for k in HTTP_QUICK_ENV}
    user_set = {k for k in HTTP_QUICK_ENV if k in os.environ and os.environ[k] != HTTP_RUN_ENV.get(k)}
    os.environ.update({k: v for k, v in HTTP_QUICK_ENV.items() if k not in user_set})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _probe(client: MlflowClient, uri: str) -> None:
    """One cheap request: the store answers, or a StoreError says why not.

    A store nobody in this sweep has reached yet gets no retry: a typo or a server that is not
    running is one line within seconds. A server that this process or its parent (a sweep, which
    starts its jobs after opening its parent run) already reached is more likely restarting than
    gone: it is asked again for REACHED_GRACE_S, as a job that gave up at once would be lost.
    """
    reached = _reached_key(uri) in os.environ.get(REACHED_ENV, "").split(",")
    deadline = time.monotonic() + (REACHED_GRACE_S if reached else 0)
    while True:
        try:
            with quick_store_calls():
                client.search_experiments(max_results=1)
            break
        except Exception as exc:  # MLflow, requests, sqlalchemy and OS errors all mean the same here
            if not is_server_away(exc) or time.monotonic() >= deadline:
                raise store_error(exc, uri) from exc
        time.sleep(1)
    if not reached:  # inherited by the sweep's worker processes
        os.environ[REACHED_ENV] = ",".join(filter(None, [os.environ.get(REACHED_ENV), _reached_key(uri)]))


# Hashes, not URIs, of the stores reached: the variable must not carry credentials to child processes.
REACHED_ENV = "EMBSEL_STORES_REACHED"


def _reached_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def _check_exists(db: Path | None, uri: str) -> None:
    """StoreError when ``uri`` names a local store (sqlite file or file store) that is not there."""
    if db is None and uri.startswith("file:"):
        db = Path(uri.removeprefix("file://").removeprefix("file:")).expanduser()
    elif db is None and "://" not in uri:
        db = Path(uri).expanduser()  # a plain path: MLflow's file store
    if db is not None and not db.exists():
        raise StoreError(
            f"no tracking store at {db} (nothing was created); pass the store's URI with "
            "--tracking-uri sqlite:////path/to/mlflow.db or set MLFLOW_TRACKING_URI"
        )


def _ensure_writable(db: Path, uri: str) -> None:
    """Create the database's folder and the lock file, and open the database for writing: a real
    attempt, since os.access is wrong for root, read-only mounts and ACLs."""
    fix = "or choose another with tracking.uri=sqlite:////writable/path/mlflow.db"
    existing = db.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(
            f"cannot create the sqlite tracking store {db}: {existing} is not a directory; {fix}"
        )
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock_path(db).touch(exist_ok=True)
        if db.exists():
            with open(db, "r+b"):
                pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(
            f"cannot write the sqlite tracking store {db} ({reason}: {exc.filename or db}); "
            f"make it writable, {fix}"
        ) from exc


def _check_not_damaged(db: Path, uri: str) -> None:
    """A store left half-migrated (``_alembic_tmp_*`` tables) or not sqlite at all: say how to repair."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:  # reads only
            tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{db} is not a usable sqlite database ({exc}); move it away or choose another store "
            f"with tracking.uri=sqlite:////path/to/mlflow.db"
        ) from exc
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if not leftovers:
        return
    if runs == 0:
        fix = f"it holds no runs: delete {db} and run again"
    else:
        statements = [
            f"DROP TABLE {t}" if t.removeprefix("_alembic_tmp_") in tables
            else f"ALTER TABLE {t} RENAME TO {t.removeprefix('_alembic_tmp_')}"
            for t in leftovers
        ]  # fmt: skip
        fix = (
            f"back it up, then run: sqlite3 {db} '{'; '.join(statements)}' "
            f"&& mlflow db upgrade sqlite:///{db}"
        )
    raise StoreError(
        f"the tracking store {db} is damaged by an interrupted schema migration "
        f"(leftover tables {', '.join(leftovers)}); {fix}"
    )


def store_error(exc: BaseException, uri: str) -> StoreError:
    """A one-line StoreError for a failure of the store at ``uri`` (credentials masked)."""
    shown = display_uri(uri)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, StoreError):
        return exc
    if sqlite_path(uri) is None and _is_connection_failure(exc):
        return StoreError(
            f"tracking server {shown} is unreachable ({_short_reason(text)}); start it "
            f"(mlflow server --host 127.0.0.1 --port 5000) or choose another with tracking.uri=..."
        )
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return StoreError(
            f"cannot write to the tracking store {shown} ({exc.strerror}: {exc.filename}); "
            "free space or fix permissions, or choose another tracking.uri"
        )
    if "out-of-date database schema" in text:
        return StoreError(
            f"the tracking store {shown} has an older schema; back it up, then run "
            f"`mlflow db upgrade {shown}`"
        )
    return StoreError(redact(f"tracking store {shown} failed: {_short_reason(text)}"))


def is_store_failure(exc: BaseException) -> bool:
    """Errors that come from the store or the filesystem under it, not from a bug in embsel."""
    if isinstance(exc, StoreError):
        return True
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return True
    if _is_connection_failure(exc):
        return True
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.OperationalError):
            return True
    return isinstance(exc, sqlite3.OperationalError)


def is_server_away(exc: BaseException) -> bool:
    """A tracking server that did not answer (refused, timed out, 502/503/504): it may be
    restarting, so the same request can succeed a few seconds later."""
    if _is_connection_failure(exc):
        return True
    text = str(exc)
    return any(f"{code} Server Error" in text or f"status code {code}" in text for code in (502, 503, 504))


def _is_connection_failure(exc: BaseException) -> bool:
    with contextlib.suppress(ImportError):
        import requests

        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
    text = str(exc)
    return any(
        marker in text
        for marker in ("Max retries exceeded", "Connection refused", "timed out", "Failed to establish")
    ) and ("API request" in text or "HTTPConnectionPool" in text or "HTTPSConnectionPool" in text)


def _short_reason(text: str) -> str:
    """The informative tail of MLflow's long request errors."""
    for marker in ("Connection refused", "Read timed out", "Connect timeout", "Name or service not known"):
        if marker in text:
            return marker.lower()
    return text if len(text) <= 300 else text[:300] + "..."
