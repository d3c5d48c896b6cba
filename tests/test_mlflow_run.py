"""`mlflow run . -e evaluate -P overrides="..."`: one run, overrides exactly as typed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mlflow_run(
    cwd: Path, overrides: str, entry_point: str = "evaluate"
) -> tuple[subprocess.CompletedProcess, list]:
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO_ROOT), "-e", entry_point, "--env-manager", "local"]
    proc = subprocess.run(
        [*cmd, "-P", f"overrides={overrides}"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return proc, runs


@pytest.fixture(scope="module")
def typed(tiny_bert_dir: Path) -> list[str]:
    """Overrides as a user types them: spaces in lists and quoted strings, glob chars, + and ~."""
    return [
        "data=demo_retrieval",
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "model.name='tiny model'",
        "evaluation.k_values=[1, 5]",
        "+tracking.tags.note='hello world'",
        "+tracking.tags.glob='*.csv'",
        "+tracking.tags.drop=me",
        "~tracking.tags.drop",
    ]


@pytest.fixture(scope="module")
def finished(typed: list[str], tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("mlflow_run")
    (cwd / "a.csv").write_text("x\n")  # a glob that a shell would expand
    proc, runs = _mlflow_run(cwd, " ".join(typed))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, runs


def test_exactly_one_finished_run_holding_the_evaluate_metrics(finished) -> None:
    _, runs = finished
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.metrics["main_score"] == run.data.metrics["test/ndcg_at_10"]
    assert run.data.tags["embsel.entry_point"] == "evaluate"


def test_overrides_artifact_is_exactly_what_was_typed(finished, typed: list[str]) -> None:
    cwd, (run,) = finished
    path = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}").download_artifacts(
        run.info.run_id, "overrides.yaml"
    )
    assert yaml.safe_load(Path(path).read_text())["overrides"] == typed
    # mlflow run records its param in the shell-quoted form it used on the command line
    assert shlex.split(run.data.params["overrides"]) == [" ".join(typed)]


def test_list_with_spaces_arrives_intact(finished) -> None:
    _, (run,) = finished
    assert run.data.params["evaluation.k_values"] == "[1, 5]"
    assert "test/ndcg_at_5" in run.data.metrics and "test/ndcg_at_3" not in run.data.metrics


def test_quoted_string_with_space_arrives_intact(finished) -> None:
    _, (run,) = finished
    assert run.data.params["model.name"] == "tiny model"
    assert run.data.tags["note"] == "hello world"


def test_glob_is_not_expanded(finished) -> None:
    _, (run,) = finished
    assert run.data.tags["glob"] == "*.csv"


def test_append_and_delete_overrides(finished) -> None:
    _, (run,) = finished
    assert "note" in run.data.tags and "drop" not in run.data.tags


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_bad_override_under_mlflow_run_fails_that_one_run(tmp_path: Path) -> None:
    proc, runs = _mlflow_run(tmp_path, "model.nmae=x")
    assert proc.returncode != 0
    (run,) = runs
    assert run.info.status == "FAILED"
    assert "nmae" in run.data.tags["error"]
