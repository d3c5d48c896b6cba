"""Efficiency measurements are reused only for the same model, data sample and machine."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import EfficiencyConfig, EvaluateJobConfig, LsaConfig, ModelConfig
from embsel_mlflow.models.cache import EmbeddingCache
from embsel_mlflow.selection.measurement_cache import MEASURED, REUSED, MeasurementCache


@pytest.fixture
def lsa_on_demo_sts():
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.models.lsa import LsaModel

    job = to_job_config(compose_config("evaluate", ["data=demo_sts"]), EvaluateJobConfig, "evaluate")
    data = load_task_data(job.data)
    cfg = ModelConfig(name="lsa", name_or_path="tfidf-svd", kind="lsa", lsa=LsaConfig(n_components=8))
    return LsaModel(cfg).for_dataset(data), data


def test_reused_for_the_same_model_sample_and_machine_only(
    lsa_on_demo_sts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, data = lsa_on_demo_sts
    embeddings = EmbeddingCache(tmp_path / "cache")
    cache = MeasurementCache(embeddings.measurements_dir)
    settings = EfficiencyConfig(sample_size=16, latency_queries=4)

    first, provenance = cache.measure(model, data, settings)
    assert provenance.source == MEASURED and first.texts_per_second > 0
    (stored,) = embeddings.measurements_dir.glob("*.json")

    again, reused = cache.measure(model, data, settings)
    assert reused.source == REUSED and reused.measured_at == provenance.measured_at
    np.testing.assert_equal(asdict(again), asdict(first))  # NaN (no API cost) equals NaN
    assert reused.tags()["embsel.efficiency_source"] == "reused"

    # another sample of texts, or another machine (thread settings), is timed again
    assert (
        cache.measure(model, data, EfficiencyConfig(sample_size=8, latency_queries=4))[1].source == MEASURED
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "97")
    assert cache.measure(model, data, settings)[1].source == MEASURED
    if threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS")
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    assert cache.measure(model, data, settings)[1].source == REUSED

    # reuse=False times again and keeps the new measurement in place of the old one
    fresh, refreshed = MeasurementCache(embeddings.measurements_dir, reuse=False).measure(
        model, data, settings
    )
    assert refreshed.source == MEASURED and fresh.texts_per_second != first.texts_per_second
    assert cache.measure(model, data, settings)[0].texts_per_second == fresh.texts_per_second

    # an unreadable record is never served: measured again and rewritten
    stored.write_text("{not json")
    assert cache.measure(model, data, settings)[1].source == MEASURED
    assert json.loads(stored.read_text())["efficiency"]["texts_per_second"] > 0

    embeddings.clear()  # `embsel cache clear` deletes the measurements with the embeddings
    assert not embeddings.measurements_dir.exists()
