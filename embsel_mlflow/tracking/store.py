"""Tracking store resolution and one-time initialisation."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow 3's own default: a sqlite store in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(configured: str | None) -> str:
    """Config first, then MLFLOW_TRACKING_URI, then sqlite:///mlflow.db."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :]).expanduser()


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live beside the database file, in ./mlruns.

    For servers and other stores the server decides (None).
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / "mlruns" / experiment).as_uri()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(db: Path) -> Path:
    """A lock file per database, kept in the temp dir so users' folders stay clean."""
    import hashlib
    import tempfile

    digest = hashlib.sha1(str(db.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"embsel-store-{digest}.lock"


def open_store(uri: str) -> MlflowClient:
    """A client for ``uri`` with its schema created.

    Several processes opening a fresh sqlite store at once race on the schema migration,
    so the first touch of a sqlite store is serialised with a lock file beside it.
    """
    from mlflow import MlflowClient

    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    with _file_lock(_lock_path(db)):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a sqlite store) if missing.

    Either way it carries the tags that make the MLflow UI show it as classic runs
    (see :mod:`embsel_mlflow.tracking.experiment_ui`).
    """
    from mlflow.exceptions import MlflowException

    from embsel_mlflow.tracking.experiment_ui import experiment_ui_tags, prepare_experiment

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        prepare_experiment(client, experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=default_artifact_location(uri, name), tags=experiment_ui_tags()
        )
    except MlflowException:
        # Another process created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
