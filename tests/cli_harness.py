"""Reusable pieces for bad-input sweeps: an in-process CLI runner, store snapshots and diffs.

- ``invoke(*args, cwd=..., env=...)`` runs ``embsel <args>`` in this process (fast: torch, mlflow and
  hydra stay imported) and returns rc, stdout and stderr as a subprocess would. Use a real
  subprocess (the ``run_cli`` fixture) where the process boundary matters: signals, exit codes of
  the interpreter, what reaches the terminal before Python starts.
- ``snapshot(db)`` reads every table of a sqlite MLflow store (with plain ``sqlite3``: reading must
  not migrate or create the store) and every file of its ``mlruns/`` beside it; ``diff(before, after)``
  says which runs are new and what else changed.
- ``assert_one_line_error(result)`` checks the promise of the README: one ``error:`` line, no traceback.

Typical case::

    before = snapshot(db)
    result = invoke("evaluate", "data.splits.test.path=nope.csv", cwd=tmp_path)
    message = assert_one_line_error(result, "nope.csv")
    (run,) = diff(before, snapshot(db)).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import sqlite3
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Variables that would make a test write into a user's store or attach to an outer run.
OUTER_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------------------------------------
# In-process CLI
# ---------------------------------------------------------------------------------------------


def _clear_hydra() -> None:
    """Hydra keeps a process-wide GlobalHydra; a second app in one process refuses to start."""
    with contextlib.suppress(ImportError):
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None]) -> Iterator[None]:
    """Apply ``env`` (None deletes a variable) and restore os.environ exactly afterwards."""
    saved = dict(os.environ)
    try:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    saved = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(saved)


def _drop_handlers_writing_to(streams: tuple[io.StringIO, ...]) -> None:
    """Hydra points logging handlers at the sys.stderr of the moment (our buffer); detach them."""
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            stream = getattr(handler, "stream", None)
            if stream in streams or isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
                with contextlib.suppress(Exception):
                    handler.close()


def invoke(*args: str, cwd: Path | str, env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run ``embsel <args>`` in this process, in ``cwd``, offline; never raises.

    The outer MLflow variables are cleared unless ``env`` sets them; ``env`` values of None
    delete a variable. os.environ, the working directory, sys.argv and Hydra's global state are
    restored afterwards. An exception that escapes the CLI is printed as the interpreter would
    (a traceback on stderr, rc 1), so callers can assert there is none.
    """
    from embsel_mlflow import cli

    full_env: dict[str, str | None] = {**OFFLINE_ENV, **dict.fromkeys(OUTER_MLFLOW_ENV), **(env or {})}
    out, err = io.StringIO(), io.StringIO()
    rc = 0
    _clear_hydra()
    saved_argv = list(sys.argv)
    with _environment(full_env), _cwd(Path(cwd)):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(list(args))
            except SystemExit as exc:
                if exc.code is None:
                    rc = 0
                elif isinstance(exc.code, int):
                    rc = exc.code
                else:  # sys.exit("message") prints the message and exits 1
                    print(exc.code, file=sys.stderr)
                    rc = 1
            except KeyboardInterrupt:
                traceback.print_exc()
                rc = 130
            except BaseException:  # report like the interpreter, never raise
                traceback.print_exc()
                rc = 1
        _drop_handlers_writing_to((out, err))
    sys.argv = saved_argv
    _clear_hydra()
    return CliResult(rc, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, needle: str | None = None, *, rc: int = 2) -> str:
    """Exactly one ``error:`` line (containing ``needle``), exit code ``rc``, no traceback anywhere.

    Returns the message after ``error: `` (what the run's ``error`` tag should hold).
    """
    shown = (
        f"rc={result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert result.returncode == rc, shown
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, shown
    errors = result.error_lines
    assert len(errors) == 1, shown
    if needle is not None:
        assert needle in errors[0], shown
    return errors[0].removeprefix("error: ")


# ---------------------------------------------------------------------------------------------
# Store snapshots
# ---------------------------------------------------------------------------------------------

# run ids, dataset/input uuids, logged-model ids (m-<hex>)
_ID = re.compile(r"^[0-9a-f]{16,}$|^[0-9a-f-]{36}$|^m-[0-9a-f]{16,}$")


@dataclass
class RunView:
    """One run as the store holds it."""

    run_id: str
    status: str
    experiment_id: str
    name: str
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StoreSnapshot:
    exists: bool
    tables: dict[str, list[tuple]]  # table -> sorted rows
    files: dict[str, str]  # path relative to ``root`` -> sha256 (mlruns/ only)
    root: Path = Path(".")  # the store's folder

    @property
    def table_names(self) -> set[str]:
        return set(self.tables)

    def runs(self) -> dict[str, RunView]:
        if not self.exists or "runs" not in self.tables:
            return {}
        columns = self._columns["runs"]
        out: dict[str, RunView] = {}
        for row in self.tables["runs"]:
            rec = dict(zip(columns, row, strict=True))
            out[rec["run_uuid"]] = RunView(
                run_id=rec["run_uuid"],
                status=rec["status"],
                experiment_id=str(rec["experiment_id"]),
                name=rec["name"] or "",
                artifact_uri=rec["artifact_uri"] or "",
            )
        for table, target in (("tags", "tags"), ("params", "params"), ("latest_metrics", "metrics")):
            columns = self._columns.get(table, [])
            for row in self.tables.get(table, []):
                rec = dict(zip(columns, row, strict=True))
                run = out.get(rec["run_uuid"])
                if run is not None:
                    getattr(run, target)[rec["key"]] = rec["value"]
        return out

    def experiments(self) -> dict[str, str]:
        """experiment id -> name."""
        columns = self._columns.get("experiments", [])
        return {
            str(rec["experiment_id"]): rec["name"]
            for rec in (dict(zip(columns, row, strict=True)) for row in self.tables.get("experiments", []))
        }

    _columns: dict[str, list[str]] = field(default_factory=dict)


def _db_path(store: Path | str) -> Path:
    text = str(store)
    return Path(text.removeprefix("sqlite:///")) if text.startswith("sqlite:///") else Path(text)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(store: Path | str, artifacts: Path | str | None = None) -> StoreSnapshot:
    """Every row of every table of the sqlite store ``store`` (path or ``sqlite:///`` URI) and every
    file under ``artifacts`` (default: ``mlruns/`` beside the database). Reads only; a missing store
    gives an empty snapshot and is not created."""
    db = _db_path(store)
    artifact_root = Path(artifacts) if artifacts is not None else db.parent / "mlruns"
    files = {
        str(p.relative_to(artifact_root.parent)): _file_digest(p)
        for p in sorted(artifact_root.rglob("*"))
        if p.is_file()
    }
    if not db.is_file() or db.stat().st_size == 0:
        return StoreSnapshot(exists=db.is_file(), tables={}, files=files, root=artifact_root.parent)
    con = sqlite3.connect(db, timeout=30)  # not mode=ro: a read-only reader cannot wait out a hot journal
    try:
        con.execute("BEGIN")  # one consistent read, even while another process migrates or logs
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        tables: dict[str, list[tuple]] = {}
        columns: dict[str, list[str]] = {}
        for name in names:
            columns[name] = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')]
            rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
            tables[name] = sorted(rows, key=repr)
    finally:
        con.close()
    snap = StoreSnapshot(exists=True, tables=tables, files=files, root=artifact_root.parent)
    snap._columns = columns
    return snap


@dataclass
class StoreDiff:
    before: StoreSnapshot
    after: StoreSnapshot
    new_runs: dict[str, RunView]
    changed_runs: list[str]  # runs that existed before and differ now (status, tags, params, ...)
    removed_runs: list[str]
    new_experiments: dict[str, str]
    new_tables: set[str]
    removed_tables: set[str]
    foreign_rows: dict[str, list[tuple]]  # added or removed rows that belong to no new run
    changed_files: list[str]  # artifact files removed, modified, or added outside new runs' dirs

    def describe(self) -> str:
        parts = {
            "changed_runs": self.changed_runs,
            "removed_runs": self.removed_runs,
            "new_tables": sorted(self.new_tables),
            "removed_tables": sorted(self.removed_tables),
            "foreign_rows": {k: v[:5] for k, v in self.foreign_rows.items()},
            "changed_files": self.changed_files[:10],
            "new_runs": {k: v.status for k, v in self.new_runs.items()},
        }
        return "; ".join(f"{k}={v}" for k, v in parts.items() if v)

    def assert_only_new_runs(
        self, count: int = 1, *, status: str | None = None, allow_new_experiment: bool = True
    ) -> list[RunView]:
        """Nothing changed but ``count`` new runs (each in ``status``); returns them.

        ``count=0`` asserts the store did not change at all (apart from being created).
        """
        assert not self.changed_runs and not self.removed_runs, self.describe()
        assert not self.removed_tables, self.describe()
        assert not self.new_tables or not self.before.tables, self.describe()  # schema only on creation
        assert not self.foreign_rows, self.describe()
        assert not self.changed_files, self.describe()
        if not allow_new_experiment:
            assert not self.new_experiments, self.describe()
        assert len(self.new_runs) == count, self.describe()
        if status is not None:
            assert {r.status for r in self.new_runs.values()} <= {status}, self.describe()
        return list(self.new_runs.values())

    def assert_unchanged(self) -> None:
        """The store is exactly as before (a store that did not exist may now exist, but empty of runs)."""
        self.assert_only_new_runs(0, allow_new_experiment=self.before.exists is False)


def diff(before: StoreSnapshot, after: StoreSnapshot) -> StoreDiff:
    """What changed between two snapshots of one store, attributed to new runs where possible."""
    runs_before, runs_after = before.runs(), after.runs()
    new_runs = {k: v for k, v in runs_after.items() if k not in runs_before}
    removed_runs = sorted(k for k in runs_before if k not in runs_after)
    changed_runs = sorted(k for k in runs_before if k in runs_after and runs_before[k] != runs_after[k])
    experiments_before = before.experiments()
    new_experiments = {k: v for k, v in after.experiments().items() if k not in experiments_before}

    # Rows owned by a new run: they hold its id, or an id that such a row introduced (e.g. an
    # input's dataset uuid), or the id of a new experiment.
    added: dict[str, list[tuple]] = {}
    removed: dict[str, list[tuple]] = {}
    for table in set(before.tables) | set(after.tables):
        old, new = before.tables.get(table, []), after.tables.get(table, [])
        old_set, new_set = set(old), set(new)
        if (table in after.tables and table in before.tables) or not before.tables:
            added[table] = [r for r in new if r not in old_set]
            removed[table] = [r for r in old if r not in new_set]
    owned = set(new_runs)
    for _ in range(3):  # ids introduced by owned rows: runs -> inputs -> datasets / input_tags
        for rows in added.values():
            for row in rows:
                values = {str(v) for v in row}
                if values & owned:
                    owned |= {v for v in values if _ID.match(v)}
    owned_experiments = set(new_experiments)
    foreign: dict[str, list[tuple]] = {}
    for table, rows in added.items():
        if table == "alembic_version" and not before.tables:
            continue
        bad = [
            r
            for r in rows
            if not ({str(v) for v in r} & owned)
            and not (table in ("experiments", "experiment_tags") and {str(v) for v in r} & owned_experiments)
        ]
        if bad:
            foreign[table] = bad
    for table, rows in removed.items():
        # a new run's own row may be rewritten (e.g. RUNNING -> FAILED); a removed row of an old run never
        bad = [r for r in rows if not ({str(v) for v in r} & owned)]
        if bad:
            foreign.setdefault(table, []).extend(bad)

    new_run_dirs = [Path(r.artifact_uri.removeprefix("file://")) for r in new_runs.values() if r.artifact_uri]
    changed_files: list[str] = []
    for rel, digest in after.files.items():
        if before.files.get(rel) == digest:
            continue
        # a new file is fine only inside a new run's artifact dir
        path = (after.root / rel).resolve()
        if rel not in before.files and any(path.is_relative_to(d.resolve()) for d in new_run_dirs):
            continue
        changed_files.append(rel)
    changed_files += [rel for rel in before.files if rel not in after.files]
    return StoreDiff(
        before=before,
        after=after,
        new_runs=new_runs,
        changed_runs=changed_runs,
        removed_runs=removed_runs,
        new_experiments=new_experiments,
        new_tables=set(after.tables) - set(before.tables),
        removed_tables=set(before.tables) - set(after.tables),
        foreign_rows=foreign,
        changed_files=changed_files,
    )


class Store:
    """A sqlite store in a folder: ``store.snapshot()`` and ``store.diff_since(snap)`` in one place."""

    def __init__(self, folder: Path | str, db_name: str = "mlflow.db") -> None:
        self.folder = Path(folder)
        self.db = self.folder / db_name
        self.uri = f"sqlite:///{self.db}"

    def snapshot(self) -> StoreSnapshot:
        return snapshot(self.db)

    def diff_since(self, before: StoreSnapshot) -> StoreDiff:
        return diff(before, self.snapshot())

    def runs(self) -> dict[str, RunView]:
        return self.snapshot().runs()
