"""Bad input and faults in the tracking layer (issue 11, sections 1, 2, 3 and the tracking part of 5).

Every case runs against a real sqlite store that already holds history (a FINISHED, a FAILED
and a KILLED run with params, metrics and artifacts) and asserts: the exit code, exactly one
``error:`` line, no traceback, the new run's status (or that there is none), and that nothing
else in the store changed. Cases where the process boundary matters (signals, exit codes,
what reaches the terminal, timing from a cold start) run ``embsel`` in a subprocess; the rest
call the CLI in-process (tests/cli_harness.py) so the suite stays fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.tracking.repair import (
    HOST_TAG,
    PID_NAMESPACE_TAG,
    PID_TAG,
    PROCESS_START_TAG,
    process_tags,
)
from embsel_mlflow.tracking.run import tracked_run
from embsel_mlflow.tracking.secrets import MASK, is_secret_key, mask_override, mask_secrets, redact
from embsel_mlflow.tracking.store import experiment_dir_name, lock_path
from tests.cli_harness import CliResult, Store, StoreSnapshot, assert_one_line_error, invoke

SECRET = "s3cr3t-DoNotLeak-7f1b9"
# Paths that even root cannot write (sysfs refuses new files).
UNWRITABLE_DIR = Path("/sys/embsel-no-such-dir")


def _can_create(path: Path) -> bool:
    try:
        path.mkdir(parents=True)
    except OSError:
        return False
    path.rmdir()
    return True


needs_unwritable = pytest.mark.skipif(
    _can_create(UNWRITABLE_DIR), reason="this system lets us write under /sys"
)


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def history_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store holding three runs (FINISHED, FAILED, KILLED) with params, metrics and artifacts.

    Built once: creating a sqlite store runs MLflow's schema migrations (seconds each time).
    """
    store = Store(tmp_path_factory.mktemp("history"))
    tracking = TrackingConfig(uri=store.uri)
    with tracked_run(tracking, entry_point="evaluate", run_name="good") as run:
        run.log_params({"model.name": "old"})
        run.log_metrics({"main_score": 0.5})
        run.log_dict({"scores": {"a": 0.5}}, "results.json")
    with pytest.raises(ValueError), tracked_run(tracking, entry_point="evaluate", run_name="bad") as run:
        run.log_params({"model.name": "old"})
        raise ValueError("old failure")
    with pytest.raises(KeyboardInterrupt), tracked_run(tracking, entry_point="evaluate", run_name="int"):
        raise KeyboardInterrupt
    return store


@pytest.fixture
def store(history_store: Store, tmp_path: Path) -> Store:
    """A copy of the history store as the default store of a CLI run in tmp_path (./mlflow.db)."""
    shutil.copy2(history_store.db, tmp_path / "mlflow.db")
    shutil.copytree(history_store.folder / "mlruns", tmp_path / "mlruns")
    old, new = history_store.folder.as_uri(), tmp_path.as_uri()
    con = sqlite3.connect(tmp_path / "mlflow.db")
    con.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    con.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (old, new))
    con.commit()
    con.close()
    return Store(tmp_path)


def _run_ids(store: Store) -> dict[str, str]:
    """run name -> id of the history runs."""
    return {run.name: run_id for run_id, run in store.runs().items()}


def _tiny(model_dir: Path) -> list[str]:
    return [f"model.name_or_path={model_dir}", "model.name=tiny"]


def _failed_case(result: CliResult, store: Store, before: StoreSnapshot, needle: str) -> str:
    """One error line with ``needle``, rc 2, one new FAILED run whose error tag is that line."""
    message = assert_one_line_error(result, needle)
    (run,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message
    return message


def _refused_case(result: CliResult, store: Store, before: StoreSnapshot, needle: str) -> str:
    """One error line with ``needle``, rc 2, and the store exactly as before."""
    message = assert_one_line_error(result, needle)
    store.diff_since(before).assert_unchanged()
    return message


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def _dead_pid() -> int:
    """The pid of a process that has really ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _grep(secret: str, *paths: Path) -> list[str]:
    hits = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        hits += [str(p) for p in files if secret.encode() in p.read_bytes()]
    return hits


# ---------------------------------------------------------------------------------------------
# 1. Never damage the store
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["good", "bad", "int"], ids=["FINISHED", "FAILED", "KILLED"])
def test_mlflow_run_id_of_an_ended_run_is_refused_and_the_run_untouched(
    store: Store, tmp_path: Path, tiny_st_dir: Path, name: str
) -> None:
    run_id = _run_ids(store)[name]
    before = store.snapshot()
    result = invoke("evaluate", *_tiny(tiny_st_dir), cwd=tmp_path, env={"MLFLOW_RUN_ID": run_id})
    message = _refused_case(result, store, before, "MLFLOW_RUN_ID")
    assert run_id in message and "RUNNING" in message


def test_mlflow_run_id_that_does_not_exist_is_one_line(store: Store, tmp_path: Path) -> None:
    before = store.snapshot()
    result = invoke("evaluate", cwd=tmp_path, env={"MLFLOW_RUN_ID": uuid.uuid4().hex})
    _refused_case(result, store, before, "MLFLOW_RUN_ID")


def test_mlflow_run_id_of_a_finished_run_with_a_config_error_leaves_it_finished(
    store: Store, tmp_path: Path
) -> None:
    before = store.snapshot()
    result = invoke("evaluate", "model.nmae=x", cwd=tmp_path, env={"MLFLOW_RUN_ID": _run_ids(store)["good"]})
    _refused_case(result, store, before, "nmae")


def test_mlflow_run_id_of_a_running_run_is_attached(store: Store, tmp_path: Path) -> None:
    client = MlflowClient(store.uri)
    outer = client.create_run(client.get_experiment_by_name("embsel").experiment_id).info.run_id
    before = store.snapshot()
    result = invoke("evaluate", "model.nmae=x", cwd=tmp_path, env={"MLFLOW_RUN_ID": outer})
    message = assert_one_line_error(result, "nmae")
    diff = store.diff_since(before)
    assert diff.changed_runs == [outer] and not diff.new_runs, diff.describe()
    after = store.runs()[outer]
    assert (after.status, after.tags["error"]) == ("FAILED", message)


def _damage(db: Path, *, drop_runs: bool = False) -> None:
    """What 8 racing first runs left behind: alembic's batch-migration copies of tables."""
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE _alembic_tmp_params AS SELECT * FROM params")
    if drop_runs:
        for table in ("tags", "params", "latest_metrics", "metrics", "runs"):
            con.execute(f"DELETE FROM {table}")
    con.commit()
    con.close()


def test_half_migrated_store_is_one_line_saying_how_to_repair(store: Store, tmp_path: Path) -> None:
    _damage(store.db)
    before = store.snapshot()
    result = invoke("evaluate", cwd=tmp_path)
    message = _refused_case(result, store, before, "_alembic_tmp_params")
    assert "DROP TABLE _alembic_tmp_params" in message and "mlflow db upgrade" in message


def test_half_migrated_fresh_store_says_delete_it(store: Store, tmp_path: Path) -> None:
    _damage(store.db, drop_runs=True)
    before = store.snapshot()
    result = invoke("evaluate", cwd=tmp_path)
    message = _refused_case(result, store, before, "damaged")
    assert f"delete {store.db}" in message


def test_a_file_that_is_not_sqlite_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"my notes, not a database\n" * 100)
    result = invoke("evaluate", cwd=tmp_path)
    assert_one_line_error(result, "not a usable sqlite database")
    assert db.read_bytes() == b"my notes, not a database\n" * 100


@pytest.mark.parametrize("name", ["../../escape-{u}", "/tmp/abs-{u}", ".", "a/../../b-{u}", "x\\..\\y-{u}"])
def test_experiment_names_never_become_paths_outside_mlruns(store: Store, tmp_path: Path, name: str) -> None:
    unique = uuid.uuid4().hex[:8]
    name = name.format(u=unique)
    before = store.snapshot()
    # a data error after the config is logged: the run has artifacts
    result = invoke(
        "evaluate", f"tracking.experiment='{name}'", "data.splits.test.path=nope.csv", cwd=tmp_path
    )
    _failed_case(result, store, before, "nope.csv")
    (run,) = store.diff_since(before).new_runs.values()
    artifact_dir = Path(run.artifact_uri.removeprefix("file://")).resolve()
    assert artifact_dir.is_relative_to((tmp_path / "mlruns").resolve())
    assert (artifact_dir / "config.yaml").is_file()
    assert artifact_dir.parent.parent.name == experiment_dir_name(name)  # mlruns/<experiment>/<run>/artifacts
    for place in (tmp_path.parent, tmp_path.parent.parent, Path("/tmp")):
        assert not list(place.glob(f"*{unique}*"))
    assert MlflowClient(store.uri).get_experiment(run.experiment_id).name == name


@pytest.mark.parametrize(
    "value,needle",
    [("''", "empty"), ("'  '", "empty"), ("' padded'", "spaces"), ("x" * 300, "300 characters")],
    ids=["empty", "blank", "padded", "too-long"],
)
def test_invalid_experiment_name_is_one_line_and_no_run(
    store: Store, tmp_path: Path, value: str, needle: str
) -> None:
    before = store.snapshot()
    result = invoke("evaluate", f"tracking.experiment={value}", cwd=tmp_path)
    message = _refused_case(result, store, before, needle)
    assert "tracking.experiment" in message


def test_a_deleted_experiment_is_one_line_saying_how_to_restore_it(store: Store, tmp_path: Path) -> None:
    client = MlflowClient(store.uri)
    client.delete_experiment(client.create_experiment("gone"))
    before = store.snapshot()
    result = invoke("evaluate", "tracking.experiment=gone", cwd=tmp_path)
    _refused_case(result, store, before, "mlflow experiments restore")


def test_store_lock_lives_beside_the_store_not_in_tmpdir(history_store: Store) -> None:
    db = history_store.db
    assert lock_path(db) == db.parent / ".mlflow.db.lock" and lock_path(db).is_file()


_FIRST_RUN = """
import sys
from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.tracking.run import tracked_run
with tracked_run(TrackingConfig(uri=sys.argv[1], experiment="race"), entry_point="e", run_name="r") as run:
    run.log_metrics({"m": 1.0})
"""


@pytest.mark.parametrize(
    "processes",  # 9 s and more: tests/test_tracking.py races a fresh store in the default suite
    [pytest.param(4, marks=pytest.mark.slow), pytest.param(8, marks=pytest.mark.slow)],
    ids=["4-processes", "8-processes"],
)
def test_first_runs_with_their_own_tmpdir_on_one_fresh_store_all_finish(
    tmp_path: Path, processes: int
) -> None:
    """The bar is 8 processes (`pytest -m slow`); 4 in the default suite keep it fast on 2 cores."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    procs = []
    for i in range(processes):
        tmpdir = tmp_path / f"tmp{i}"
        tmpdir.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _FIRST_RUN, uri],
                env=_subprocess_env(TMPDIR=str(tmpdir)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, [err[-2000:] for _, err in outputs]
    runs = Store(tmp_path, "fresh.db").runs()
    assert [r.status for r in runs.values()] == ["FINISHED"] * processes
    con = sqlite3.connect(tmp_path / "fresh.db")
    tables = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'")]
    con.close()
    assert tables == []


# --- runs left RUNNING ------------------------------------------------------------------------


def _orphan(
    store: Store, *, pid: int, host: str | None = None, start: str | None = None, namespace: str | None = None
) -> str:
    """A RUNNING run recorded by process ``pid`` of ``host`` (default: this host)."""
    client = MlflowClient(store.uri)
    tags = {**process_tags(), PID_TAG: str(pid)}
    if namespace is not None:
        tags[PID_NAMESPACE_TAG] = namespace
    if host is not None:
        tags[HOST_TAG] = host
    tags.pop(PROCESS_START_TAG, None)
    if start is not None:
        tags[PROCESS_START_TAG] = start
    experiment_id = client.get_experiment_by_name("embsel").experiment_id
    return client.create_run(experiment_id, run_name="orphan", tags=tags).info.run_id


def test_runs_repair_closes_runs_whose_process_is_gone_and_nothing_else(store: Store, tmp_path: Path) -> None:
    dead = _orphan(store, pid=_dead_pid())
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = _orphan(store, pid=live.pid)
        elsewhere = _orphan(store, pid=_dead_pid(), host="another-host")
        container = _orphan(store, pid=_dead_pid(), namespace="pid:[1]")  # same host name, other pids
        before = store.snapshot()
        result = invoke("runs", "repair", cwd=tmp_path)
    finally:
        live.kill()
        live.wait()
    assert result.returncode == 0 and not result.error_lines, result.stderr
    assert dead in result.stdout and alive not in result.stdout
    diff = store.diff_since(before)
    assert diff.changed_runs == [dead] and not diff.new_runs, diff.describe()
    runs = store.runs()
    assert runs[dead].status == "KILLED" and "ended without closing" in runs[dead].tags["error"]
    assert runs[alive].status == runs[elsewhere].status == runs[container].status == "RUNNING"


def test_runs_repair_dry_run_changes_nothing(store: Store, tmp_path: Path) -> None:
    dead = _orphan(store, pid=_dead_pid())
    before = store.snapshot()
    result = invoke("runs", "repair", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0 and dead in result.stdout
    store.diff_since(before).assert_unchanged()


def test_a_reused_pid_does_not_keep_a_dead_run_open(store: Store, tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = _orphan(store, pid=live.pid, start="1")  # a live pid, but another start time
        before = store.snapshot()
        result = invoke("runs", "repair", cwd=tmp_path)
    finally:
        live.kill()
        live.wait()
    assert result.returncode == 0
    assert store.diff_since(before).changed_runs == [reused]
    assert store.runs()[reused].status == "KILLED"


def test_the_next_run_closes_a_dead_processs_run(store: Store, tmp_path: Path) -> None:
    dead = _orphan(store, pid=_dead_pid())
    before = store.snapshot()
    result = invoke("evaluate", "model.nmae=x", cwd=tmp_path)
    assert_one_line_error(result, "nmae")
    diff = store.diff_since(before)
    assert diff.changed_runs == [dead] and len(diff.new_runs) == 1, diff.describe()
    assert store.runs()[dead].status == "KILLED"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["runs"], "required"),
        (["runs", "repair", "--bogus"], "--bogus"),
        (["runs", "fix"], "invalid choice"),
    ],
    ids=["no-action", "unknown-option", "unknown-action"],
)
def test_runs_command_usage_errors_are_one_line(
    store: Store, tmp_path: Path, args: list[str], needle: str
) -> None:
    before = store.snapshot()
    _refused_case(invoke(*args, cwd=tmp_path), store, before, needle)


# ---------------------------------------------------------------------------------------------
# 2. Fail fast when the store or the filesystem is not usable
# ---------------------------------------------------------------------------------------------


def test_unreachable_server_is_one_line_in_seconds_and_masks_credentials(tmp_path: Path) -> None:
    started = time.monotonic()
    result = invoke("evaluate", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": f"http://me:{SECRET}@127.0.0.1:9"})
    elapsed = time.monotonic() - started
    message = assert_one_line_error(result, "unreachable")
    assert SECRET not in result.stderr + result.stdout and "127.0.0.1:9" in message
    assert elapsed < 15
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_server_after_a_config_error_stays_one_line_and_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    result = invoke("evaluate", "tracking.uri=http://127.0.0.1:9", "model.nmae=x", cwd=tmp_path)
    assert_one_line_error(result, "nmae")
    assert time.monotonic() - started < 15


def test_runs_repair_against_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = invoke("runs", "repair", "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    assert_one_line_error(result, "unreachable")


@needs_unwritable
def test_unwritable_sqlite_path_is_one_line_within_seconds(store: Store, tmp_path: Path) -> None:
    before = store.snapshot()
    started = time.monotonic()
    result = invoke("evaluate", f"tracking.uri=sqlite:///{UNWRITABLE_DIR}/mlflow.db", cwd=tmp_path)
    _refused_case(result, store, before, "cannot write the sqlite tracking store")
    assert time.monotonic() - started < 15


def test_sqlite_path_below_a_regular_file_is_one_line(store: Store, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    before = store.snapshot()
    result = invoke("evaluate", f"tracking.uri=sqlite:///{tmp_path}/afile/mlflow.db", cwd=tmp_path)
    _refused_case(result, store, before, "is not a directory")


@needs_unwritable
def test_unwritable_hydra_output_dir_is_one_line_and_a_failed_run(store: Store, tmp_path: Path) -> None:
    before = store.snapshot()
    result = invoke("evaluate", f"hydra.run.dir={UNWRITABLE_DIR}/out", cwd=tmp_path)
    _failed_case(result, store, before, "hydra.run.dir")


def test_hydra_output_dir_below_a_regular_file_is_one_line_and_a_failed_run(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    before = store.snapshot()
    result = invoke("evaluate", f"hydra.run.dir={tmp_path}/afile/out", cwd=tmp_path)
    _failed_case(result, store, before, "Not a directory")


@needs_unwritable
def test_unwritable_multirun_sweep_dir_is_one_line(store: Store, tmp_path: Path, tiny_st_dir: Path) -> None:
    before = store.snapshot()
    result = invoke(
        "evaluate", "-m", f"hydra.sweep.dir={UNWRITABLE_DIR}/sweep", *_tiny(tiny_st_dir), cwd=tmp_path
    )
    _refused_case(result, store, before, "hydra.sweep.dir")


@needs_unwritable
def test_unwritable_working_directory_is_one_line(tmp_path: Path) -> None:
    result = invoke("evaluate", cwd="/sys")
    assert_one_line_error(result, "cannot write")


# ---------------------------------------------------------------------------------------------
# 3. No secret on disk or screen
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "token", "model.token", "api_token", "Authorization", "X-Api-Key", "apiKey", "session_cookie",
        "bearer", "credentials", "db_password", "client_secret", "AWS_SECRET_ACCESS_KEY", "hftoken",
        "MLFLOW_TRACKING_PASSWORD", "private_key", "sessionid", "auth",
    ],
)  # fmt: skip
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["tokenizer", "author", "max_seq_length", "name_or_path", "session_name_not", "keyword", "model.kwargs"],
)
def test_not_secret_key_names(key: str) -> None:
    assert is_secret_key(key) is (key == "session_name_not")  # 'session' is a secret word


def test_settings_named_like_secrets_keep_their_values() -> None:
    config = {
        "profile": {"unknown_token_rate_warn": 0.05},
        "monitor": {"text": {"max_unknown_token_increase": 0.1}},
        "train_args": {"include_tokens_per_second": False, "include_num_input_tokens_seen": True},
        "tags": {"api_token": "x", "session_cookie": True and "abc"},
    }
    masked = mask_secrets(config)
    assert masked["profile"] == config["profile"] and masked["monitor"] == config["monitor"]
    assert masked["train_args"] == config["train_args"]
    assert masked["tags"] == {"api_token": MASK, "session_cookie": MASK}
    assert mask_override("+tracking.tags.api_token=x") == f"+tracking.tags.api_token={MASK}"
    assert mask_override("train_args.include_tokens_per_second=true").endswith("=true")
    # model2vec's bar is a progress counter, not a secret; a token in the same line still is
    bar = "Encoding tokens: 100%|##########| 3/3 [00:00<00:00] Encoding tokens:  33%|###4 | 1/3 0it"
    assert redact(bar) == bar
    assert redact("hf_token: hf_abcdefgh done") == f"hf_token: {MASK} done"


def test_redact_masks_urls_headers_and_key_values() -> None:
    text = (
        f"GET https://alice:{SECRET}@host/x Authorization: Bearer {SECRET}Z token={SECRET}Y "
        f"api_key: '{SECRET}X' model=minilm"
    )
    masked = redact(text)
    assert SECRET not in masked and "model=minilm" in masked and "https://***@host/x" in masked


def _secret_overrides() -> list[str]:
    return [
        f"+tracking.tags.api_token={SECRET}A",
        f"+tracking.tags.Authorization='Bearer {SECRET}B'",
        f"+tracking.tags.session_cookie={SECRET}C",
        f"+tracking.tags.endpoint='https://me:{SECRET}D@example.invalid/api'",
        f"model.token={SECRET}E",
    ]


def test_secrets_in_tags_token_and_uris_reach_no_sink(
    store: Store, tmp_path: Path, tiny_st_dir: Path
) -> None:
    before = store.snapshot()
    result = invoke("evaluate", *_tiny(tiny_st_dir), *_secret_overrides(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = store.diff_since(before).assert_only_new_runs(status="FINISHED")
    assert run.tags["api_token"] == run.tags["Authorization"] == run.tags["session_cookie"] == MASK
    assert run.tags["endpoint"] == "https://***@example.invalid/api"
    assert {k: v for k, v in run.params.items() if is_secret_key(k)} == dict.fromkeys(
        [k for k in run.params if is_secret_key(k)], MASK
    )
    assert SECRET not in result.stdout + result.stderr
    assert _grep(SECRET, store.db, tmp_path / "mlruns", tmp_path / "outputs") == []
    assert not list((tmp_path / "outputs").rglob(".hydra"))


def test_secrets_of_a_failed_run_reach_no_sink(store: Store, tmp_path: Path) -> None:
    before = store.snapshot()
    result = invoke("evaluate", *_secret_overrides(), f"data.splits.test.path={SECRET}.csv", cwd=tmp_path)
    _failed_case(result, store, before, MASK)
    assert SECRET not in result.stdout + result.stderr
    assert _grep(SECRET, store.db, tmp_path / "mlruns", tmp_path / "outputs") == []


def test_secrets_in_a_multirun_reach_no_sink(store: Store, tmp_path: Path, tiny_st_dir: Path) -> None:
    before = store.snapshot()
    result = invoke("evaluate", "-m", *_tiny(tiny_st_dir), *_secret_overrides(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    store.diff_since(before).assert_only_new_runs(2, status="FINISHED")  # the sweep's parent and one job
    assert "multirun.yaml" in {p.name for p in (tmp_path / "multirun").rglob("*")}
    assert SECRET not in result.stdout + result.stderr
    assert _grep(SECRET, store.db, tmp_path / "mlruns", tmp_path / "multirun") == []


def test_cfg_job_prints_secrets_masked(tmp_path: Path) -> None:
    result = invoke("evaluate", "--cfg", "job", *_secret_overrides(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "token: '***'" in result.stdout or "token: ***" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "mlflow.db").exists()


# ---------------------------------------------------------------------------------------------
# 5. One line, never a traceback (the tracking/CLI part)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,needle", [("model.nmae=x", "nmae"), ("data=nope", "nope"), ("evaluation.seed=abc", "seed")]
)
def test_cfg_job_with_a_bad_override_is_one_line_and_touches_no_store(
    store: Store, tmp_path: Path, override: str, needle: str
) -> None:
    before = store.snapshot()
    _refused_case(invoke("evaluate", "--cfg", "job", override, cwd=tmp_path), store, before, needle)


def test_console_of_a_failed_first_run_holds_only_the_error_line(tmp_path: Path) -> None:
    """A fresh store: MLflow's migration INFO lines must not reach stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "embsel_mlflow", "evaluate", "model.nmae=x"],
        cwd=tmp_path, env=_subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(result, "nmae")
    assert result.stderr.splitlines() == result.error_lines
    (run,) = Store(tmp_path).runs().values()
    assert run.status == "FAILED"


def test_store_down_from_a_cold_start_is_one_line_in_under_15_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "embsel_mlflow", "evaluate"],
        cwd=tmp_path, env=_subprocess_env(MLFLOW_TRACKING_URI="http://127.0.0.1:9"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(result, "unreachable")
    assert result.stderr.splitlines() == result.error_lines
    assert elapsed < 15, elapsed


# --- signals: a real process, a real run in flight ----------------------------------------------

# A step that opens a real run and keeps it open, through the real CLI machinery (run_app,
# tracked_run) but without torch, so a process boundary costs seconds. With ``log`` it logs a
# metric every 0.2 s, so it notices a store that goes away.
_SLEEPING_STEP = """
import sys, time
from embsel_mlflow.jobs.app import run_app
from embsel_mlflow.tracking.run import tracked_run

LOG = "log" in sys.argv[1:]  # read now: run_app replaces sys.argv for Hydra

def job(cfg, tracking, overrides):
    with tracked_run(tracking, entry_point="evaluate", run_name="sleeper") as run:
        run.set_tags({"embsel.task": "sleep"})
        for step in range(600):
            if LOG:
                run.log_metrics({"heartbeat": step}, step=step)
            time.sleep(0.2)

sys.exit(run_app("evaluate", job, [a for a in sys.argv[1:] if a != "log"]))
"""


def _wait_for_run(proc: subprocess.Popen, find_run) -> str:
    """Poll until ``find_run()`` names the process's open run; fail if the process ends first."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the process ended before the run started: {proc.communicate()[1][-2000:]}")
        run_id = find_run()
        if run_id:
            return run_id
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no run started")


def _start(cwd: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env or _subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """Ctrl-C's default action in the child, as in a terminal: a shell starts background jobs
    (``pytest &`` in a script) with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _open_run(store: Store):
    def find() -> str | None:
        running = [r for r in store.runs().values() if r.status == "RUNNING" and "embsel.task" in r.tags]
        return running[0].run_id if running else None

    return find


@pytest.fixture(scope="module")
def slow_sts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An STS file big enough that the tiny model is still encoding when the signal arrives."""
    path = tmp_path_factory.mktemp("slow") / "sts.csv"
    words = "man woman cat dog plays reads guitar book street field red blue runs sleeps".split()  # noqa: SIM905
    rows = ["sentence1,sentence2,score"]
    for i in range(4000):
        a = " ".join(words[(i * k) % len(words)] for k in range(1, 12))
        b = " ".join(words[(i * k + 3) % len(words)] for k in range(1, 12))
        rows.append(f"{a} {i},{b} {i},{i % 5}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _assert_killed(
    store: Store, before: StoreSnapshot, run_id: str, result: CliResult, reason: str, rc: int
) -> None:
    message = assert_one_line_error(result, reason, rc=rc)
    diff = store.diff_since(before)
    assert diff.changed_runs == [run_id] and not diff.new_runs, diff.describe()
    run = store.runs()[run_id]
    assert run.status == "KILLED" and run.tags["error"] in message


def test_sigterm_mid_evaluate_exits_143_with_one_line_and_the_run_killed(
    store: Store, tmp_path: Path, tiny_st_dir: Path, slow_sts: Path
) -> None:
    data = [
        "tracking.log_datasets=false",
        f"data.root={slow_sts.parent}",
        f"data.splits.test.path={slow_sts.name}",
    ]
    proc = _start(tmp_path, [sys.executable, "-m", "embsel_mlflow", "evaluate", *_tiny(tiny_st_dir), *data])
    run_id = _wait_for_run(proc, _open_run(store))
    before = store.snapshot()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    _assert_killed(store, before, run_id, CliResult(proc.returncode, out, err), "terminated by SIGTERM", 143)


@pytest.mark.parametrize(
    "signum,rc,reason",
    [
        (signal.SIGHUP, 129, "terminated by SIGHUP"),
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, 143, "SIGTERM"),
    ],
    ids=["SIGHUP", "SIGINT", "SIGTERM"],
)
def test_signal_ends_the_run_killed_with_one_line_and_the_shells_exit_code(
    store: Store, tmp_path: Path, signum: int, rc: int, reason: str
) -> None:
    proc = _start(tmp_path, [sys.executable, "-c", _SLEEPING_STEP])
    run_id = _wait_for_run(proc, _open_run(store))
    before = store.snapshot()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    _assert_killed(store, before, run_id, CliResult(proc.returncode, out, err), reason, rc)


def test_sigkill_leaves_no_running_run_after_the_next_run(store: Store, tmp_path: Path) -> None:
    proc = _start(tmp_path, [sys.executable, "-c", _SLEEPING_STEP])
    run_id = _wait_for_run(proc, _open_run(store))
    proc.kill()
    proc.communicate(timeout=60)
    assert store.runs()[run_id].status == "RUNNING"  # nobody could close it ...
    before = store.snapshot()
    result = invoke("evaluate", "model.nmae=x", cwd=tmp_path)  # ... until the next run
    assert_one_line_error(result, "nmae")
    diff = store.diff_since(before)
    assert diff.changed_runs == [run_id] and len(diff.new_runs) == 1, diff.describe()
    assert store.runs()[run_id].status == "KILLED"
    assert not [r for r in store.runs().values() if r.status == "RUNNING"]


# --- a tracking server that dies mid-run --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(folder: Path, port: int) -> subprocess.Popen:
    import urllib.request

    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination", str(folder / "art"),
    ]  # fmt: skip
    # its own process group: the server's workers and job consumers die with it
    proc = subprocess.Popen(
        cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    _kill(proc)
    pytest.fail("mlflow server did not start")


def _kill(proc: subprocess.Popen) -> None:
    """The server dies at once, with its whole process group (it was started as its leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_server_dying_mid_run_fails_in_seconds_and_repair_closes_the_run(tmp_path: Path) -> None:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    env = _subprocess_env(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    server = _start_server(tmp_path, port)
    try:
        proc = _start(tmp_path, [sys.executable, "-c", _SLEEPING_STEP, f"tracking.uri={uri}", "log"], env)
        client = MlflowClient(uri)

        def find() -> str | None:
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            return next((r.info.run_id for r in runs if "embsel.task" in r.data.tags), None)

        run_id = _wait_for_run(proc, find)
    finally:
        _kill(server)
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    print(f"process ended {time.monotonic() - started:.1f} s after the server died")
    assert time.monotonic() - started < 60
    assert_one_line_error(CliResult(proc.returncode, out, err), "unreachable")
    # a dead server could not be told: the run is still RUNNING in the server's own store, and
    # repair closes it there (a restarted server would serve it KILLED)
    server_store = Store(tmp_path, "server.db")
    assert server_store.runs()[run_id].status == "RUNNING"
    result = invoke("runs", "repair", "--tracking-uri", server_store.uri, cwd=tmp_path)
    assert result.returncode == 0 and run_id in result.stdout, result.stderr
    assert server_store.runs()[run_id].status == "KILLED"
