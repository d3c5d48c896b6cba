"""Shared fixtures: isolated MLflow stores, the shared datasets, tiny models, CLI runner."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    return Path(os.environ.get("EMBSEL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After each test module (its fixtures torn down): collect, then freeze what is left.

    What survives a module is long-lived (imported libraries, session fixtures), yet Python's
    full collections walk it again and again as tests allocate: in one module they took 8 of 48 s,
    and they grew with the session's heap. Frozen objects are skipped; refcounting still frees them.
    """
    result = yield
    if nextitem is None or nextitem.module is not getattr(item, "module", None):
        gc.collect()
        gc.freeze()
    return result


# Fewer full collections: Python's defaults (700, 10, 10) suit small heaps; a test process holds
# torch, transformers and mlflow, and each full pass over them took 1-1.5 s here.
gc.set_threshold(100_000, 20, 20)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """../shared/data (or $EMBSEL_SHARED_DATA); tests that need it skip where it is absent."""
    path = _shared_data()
    if not (path / "stsb").is_dir():
        pytest.skip(f"real datasets not found at {path} (set EMBSEL_SHARED_DATA to run this test)")
    return path


@pytest.fixture(scope="session")
def _language_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The profile's language model unpacked once per session (see profiling/language.py)."""
    from embsel_mlflow.text.language import unpacked_model_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBSEL_CACHE_DIR", str(tmp_path_factory.mktemp("langid")))
        return unpacked_model_dir()


OUTER_MLFLOW_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
)


def _isolate(patch: pytest.MonkeyPatch, cache: Path, language_model_dir: Path) -> None:
    """No outer MLflow run or store, and an embedding cache of our own, never the user's."""
    for var in OUTER_MLFLOW_VARIABLES:
        patch.delenv(var, raising=False)
    patch.setenv("EMBSEL_CACHE_DIR", str(cache))
    # Only the language model (immutable, 68 MB unpacked) is shared: every process that profiles
    # (evaluate links a profile) would otherwise unpack it again (~1 s).
    (cache / "models" / "py3langid").mkdir(parents=True, exist_ok=True)
    link = cache / "models" / "py3langid" / language_model_dir.name
    if not link.exists():
        link.symlink_to(language_model_dir)


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory, _language_model_dir: Path) -> Iterator[None]:
    """What module and session fixtures see: they are set up before a test's own isolation below."""
    with pytest.MonkeyPatch.context() as patch:
        _isolate(patch, tmp_path_factory.mktemp("session-cache"), _language_model_dir)
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _language_model_dir: Path) -> None:
    """No test may write into the repo or a user's store, or attach to an outer MLflow run.

    Each test starts with a cold embedding cache of its own, and in its tmp dir.
    """
    _isolate(monkeypatch, tmp_path / "embsel-cache", _language_model_dir)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    """A fresh sqlite MLflow store in a tmp dir."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT (WordPiece tokenizer trained locally) saved as a plain transformers model."""
    from tests.tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT + mean pooling saved as a SentenceTransformer directory."""
    from tests.tiny_models import build_tiny_sentence_transformer

    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny_st"))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``python -m embsel_mlflow ...`` in a subprocess, in tmp_path, offline."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> CliResult:
        full_env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **(env or {}),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "embsel_mlflow", *args],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray cluster (a head and one worker node, 1 CPU each, on 127.0.0.1) for the session.

    Tests that kill nodes or need their own cluster use `tests.engines.ray_cluster` directly.
    """
    from tests.engines import ray_cluster

    with ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address


@pytest.fixture(scope="session")
def postgres_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the session; each test that needs a clean store makes a database."""
    from tests.engines import serve_postgres

    with serve_postgres(tmp_path_factory.mktemp("postgres")) as uri:
        yield uri


@pytest.fixture
def tracking_server(tmp_path: Path, postgres_uri: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The team's set-up: an `mlflow server` over a fresh PostgreSQL database of this test, with
    ``--artifacts-destination`` in tmp_path; its URL (the server log: tmp_path/server/server.log)."""
    import re
    import uuid

    from tests.engines import fresh_database
    from tests.mlflow_server import serve_mlflow

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + f"_{uuid.uuid4().hex[:8]}"
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with serve_mlflow(server_dir, backend_uri=fresh_database(postgres_uri, name)) as url:
        yield url
