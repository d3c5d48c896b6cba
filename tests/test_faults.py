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
