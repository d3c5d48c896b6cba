"""The README's real fine-tune (slow): MiniLM on SciFact's train qrels, MNRL, 1 epoch, CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints import train as train_entrypoint

# ~90 min on 2 busy cores: a by-hand benchmark (`pytest -m bench`), outside CI's time budget.
pytestmark = pytest.mark.bench
ZERO_SHOT_NDCG_AT_10 = 0.64508  # `embsel evaluate data=scifact`, the published number


def test_minilm_fine_tuned_on_scifact_beats_zero_shot_in_the_same_run(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["model=minilm", "data=scifact", f"data.root={shared_data_dir}", f"tracking.uri={store}"]
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert train_entrypoint.main(args) == 0
    finally:
        os.chdir(previous)
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    assert metrics["baseline/test/ndcg_at_10"] == pytest.approx(ZERO_SHOT_NDCG_AT_10, abs=5e-6)
    assert metrics["test/ndcg_at_10"] > ZERO_SHOT_NDCG_AT_10
    assert metrics["delta/test/main_score"] == pytest.approx(
        metrics["test/ndcg_at_10"] - ZERO_SHOT_NDCG_AT_10, abs=1e-5
    )
