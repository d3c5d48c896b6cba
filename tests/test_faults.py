"""Issue 22's faults (item 10), checked through the real CLI as a new user meets them.

A real sqlite store, real Hydra composition, tiny models built locally; offline.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest


def _runs(tmp_path: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments])


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- a model scored under another model's name --------------------------------------------------


@pytest.mark.parametrize(
    "name_or_path",
    ["/path/that/does/not/exist", "sentence-transformers/all-mpnet-base-v2", "https://host.example/m"],
)
def test_minilm_config_never_scores_the_packaged_minilm_for_another_model(run_cli, tmp_path, name_or_path):
    result = run_cli("evaluate", "model=minilm", f"model.name_or_path={name_or_path}")
    assert result.returncode == 2, result.stderr
    assert len(_error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags.get("embsel.model_origin") != "offline_package"
    assert "main_score" not in run.data.metrics


# --- remote code through a side door ------------------------------------------------------------

_CUSTOM_CODE = """\
import os
from pathlib import Path

Path(os.environ["EMBSEL_TEST_MARKER"]).write_text("remote code ran")

from transformers import BertConfig, BertModel


class CustomConfig(BertConfig):
    model_type = "bert"


class CustomModel(BertModel):
    config_class = CustomConfig
"""


@pytest.fixture
def remote_code_dir(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """The tiny BERT with an ``auto_map`` to its own Python code, which leaves a marker when imported."""
    import json
    import shutil

    directory = tmp_path / "custom_code_model"
    shutil.copytree(tiny_bert_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_code.CustomConfig", "AutoModel": "custom_code.CustomModel"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "custom_code.py").write_text(_CUSTOM_CODE)
    return directory


@pytest.mark.parametrize("kind", ["transformers", "sentence_transformers"])
@pytest.mark.parametrize(
    "route",
    [
        "+model.model_kwargs.trust_remote_code=true",
        "+model.model_kwargs.config_kwargs.trust_remote_code=true",
    ],
)
def test_remote_code_has_one_switch(run_cli, tmp_path, remote_code_dir, kind, route):
    marker = tmp_path / "marker.txt"
    result = run_cli(
        "evaluate",
        f"model.kind={kind}",
        f"model.name_or_path={remote_code_dir}",
        route,
        env={"EMBSEL_TEST_MARKER": str(marker)},
    )
    assert not marker.exists(), "the model directory's Python code ran"
    assert result.returncode == 2, result.stderr
    (line,) = _error_lines(result.stderr)
    assert "model.trust_remote_code" in line and "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"


def test_without_the_switch_no_code_runs_and_the_record_says_so(run_cli, tmp_path, remote_code_dir):
    # transformers knows the model_type (bert), so it loads its own class and ignores auto_map
    marker = tmp_path / "marker.txt"
    result = run_cli(
        "evaluate",
        "model.kind=transformers",
        f"model.name_or_path={remote_code_dir}",
        env={"EMBSEL_TEST_MARKER": str(marker)},
    )
    assert not marker.exists() and result.returncode == 0, result.stderr
    (run,) = _runs(tmp_path)
    assert run.data.params["model.trust_remote_code"] == "false"
