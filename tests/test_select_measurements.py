"""Efficiency measurements are reused only for the same network, data sample, machine and load;
a stored-embedding variant takes its base's timing."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import EfficiencyConfig, EvaluateJobConfig, LsaConfig, ModelConfig
from embsel_mlflow.models.cache import EmbeddingCache
from embsel_mlflow.selection.measurement_cache import (
    MEASURED,
    REUSED,
    SAME_NETWORK,
    MeasurementCache,
    conditions_differ,
    machine_conditions,
)


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
    settings = EfficiencyConfig(sample_size=16, latency_queries=4)

    def next_run(chosen: EfficiencyConfig = settings, **options: bool):
        """A later selection: a MeasurementCache of its own over the same directory."""
        return MeasurementCache(embeddings.measurements_dir, **options).measure(model, data, chosen)

    first, provenance = next_run()
    assert provenance.source == MEASURED and first.texts_per_second > 0
    (stored,) = embeddings.measurements_dir.glob("*.json")

    again, reused = next_run()
    assert reused.source == REUSED and reused.measured_at == provenance.measured_at
    np.testing.assert_equal(asdict(again), asdict(first))  # NaN (no API cost) equals NaN
    assert reused.tags()["embsel.efficiency_source"] == "reused"

    # another sample of texts, or another machine (thread settings), is timed again
    assert next_run(EfficiencyConfig(sample_size=8, latency_queries=4))[1].source == MEASURED
    threads = os.environ.get("OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "97")
    assert next_run()[1].source == MEASURED
    if threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS")
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    assert next_run()[1].source == REUSED

    # reuse=False times again and keeps the new measurement in place of the old one
    fresh, refreshed = next_run(reuse=False)
    assert refreshed.source == MEASURED and fresh.texts_per_second != first.texts_per_second
    assert next_run()[0].texts_per_second == fresh.texts_per_second

    # an unreadable record is never served: measured again and rewritten
    stored.write_text("{not json")
    assert next_run()[1].source == MEASURED
    assert json.loads(stored.read_text())["efficiency"]["texts_per_second"] > 0

    embeddings.clear()  # `embsel cache clear` deletes the measurements with the embeddings
    assert not embeddings.measurements_dir.exists()


def test_timed_again_when_the_machine_was_busy_then_and_is_not_now(lsa_on_demo_sts, tmp_path: Path) -> None:
    model, data = lsa_on_demo_sts
    directory = tmp_path / "measurements"
    settings = EfficiencyConfig(sample_size=16, latency_queries=4)
    _, measured = MeasurementCache(directory).measure(model, data, settings)
    assert measured.conditions is not None and measured.conditions["cpus"] >= 1
    tag = measured.tags()["embsel.efficiency_conditions"]
    assert tag.startswith("other work on ") and " CPUs" in tag
    (stored,) = directory.glob("*.json")
    record = json.loads(stored.read_text())
    assert record["conditions"] == measured.conditions  # kept with the numbers

    # the same record, but taken while every CPU (or none) was busy with other work: the opposite
    # of now, whatever the load on this machine is
    now = machine_conditions()
    cpus = now["cpus"]
    record["conditions"] = {
        "other_busy_cpus": 0.0 if now["other_busy_cpus"] >= cpus / 2 else cpus,
        "cpus": cpus,
    }
    stored.write_text(json.dumps(record))
    _, retimed = MeasurementCache(directory).measure(model, data, settings)
    assert retimed.source == MEASURED

    record = json.loads(stored.read_text())
    record["conditions"] = dict(now)  # measured under today's conditions: reused
    stored.write_text(json.dumps(record))
    assert MeasurementCache(directory).measure(model, data, settings)[1].source == REUSED


def test_conditions_differ_by_the_share_of_cpus_busy_with_other_work() -> None:
    busy, idle = {"other_busy_cpus": 2.0, "cpus": 2.0, "load_1m": 3.0}, {"other_busy_cpus": 0.1, "cpus": 2.0}
    assert conditions_differ(busy, idle) and conditions_differ(idle, busy)
    assert not conditions_differ({"other_busy_cpus": 0.3, "cpus": 2.0}, {"other_busy_cpus": 0.6, "cpus": 2.0})
    assert not conditions_differ(None, idle)  # a measurement from before conditions were kept


def test_stored_embedding_variants_take_their_base_networks_timing(
    tiny_st_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """select.variants={precision: [bf16], embedding_dtype: [int8]}: int8-emb runs the fp32 network,
    so it gets the fp32 child's texts/s (one timing), with its own bytes per vector; bf16 is timed."""
    from embsel_mlflow.config import CacheConfig, SelectJobConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.selection import select_models
    from embsel_mlflow.selection.runner import default_loader
    from tests.tiny_models import _CORPUS

    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(_CORPUS))
    overrides = [
        "candidates=[e5_base]",
        f"candidates.e5_base.name_or_path={tiny_st_dir}",
        f"candidates.e5_base.variant.calibration.path={calibration}",
        "datasets=[demo_sts]",
        "select.variants={precision: [bf16], embedding_dtype: [int8]}",
        "select.resamples=100",
        "select.efficiency.sample_size=16",
        "select.efficiency.latency_queries=4",
        "evaluation.show_progress=false",
    ]
    job = to_job_config(compose_config("select", overrides), SelectJobConfig, "select")
    cache = open_cache(CacheConfig(dir=str(tmp_path / "cache")))
    assert cache is not None
    caplog.set_level(logging.INFO, logger="embsel.select")
    selection = select_models(
        job.candidates, job.datasets, job.select, job.evaluation,
        load_model=default_loader(cache, list(job.datasets.values())),
        measurements=MeasurementCache(cache.measurements_dir),
    )  # fmt: skip
    fp32 = selection.run.outcome("e5_base/fp32", "demo_sts")
    int8 = selection.run.outcome("e5_base/int8-emb", "demo_sts")
    bf16 = selection.run.outcome("e5_base/bf16", "demo_sts")
    assert fp32.efficiency and int8.efficiency and bf16.efficiency and int8.efficiency_provenance
    assert int8.efficiency.texts_per_second == fp32.efficiency.texts_per_second
    assert int8.efficiency.latency_p50_ms == fp32.efficiency.latency_p50_ms
    assert int8.efficiency_provenance.source == SAME_NETWORK
    assert int8.efficiency.bytes_per_vector == fp32.efficiency.bytes_per_vector / 4
    assert bf16.efficiency_provenance and bf16.efficiency_provenance.source == MEASURED
    side_by_side = [r.getMessage() for r in caplog.records if "side by side" in r.getMessage()]
    assert side_by_side == ["efficiency on 'demo_sts': timed side by side with 'e5_base/fp32'"]  # bf16 only


def test_a_variant_timed_against_its_base_is_the_bases_numbers_times_the_side_by_side_ratio(
    lsa_on_demo_sts,
) -> None:
    """Interleaved with a base whose own numbers say 1e9 texts/s and 1e6 ms: the variant (here the
    same network, so a ratio near 1) comes out near those, never at its own absolute speed."""
    from embsel_mlflow.selection.efficiency import Efficiency, measure_efficiency

    model, data = lsa_on_demo_sts
    settings = EfficiencyConfig(sample_size=16, latency_queries=4)
    alone = measure_efficiency(model, data, settings)
    base = Efficiency(
        texts_per_second=1e9, tokens_per_second=2e9, latency_p50_ms=1e6, latency_p95_ms=2e6,
        model_size_mb=1.0, num_parameters=1.0, embedding_dim=8.0, peak_memory_mb=1.0,
        cost_usd=float("nan"), cost_per_million_tokens=float("nan"),
    )  # fmt: skip
    interleaved = measure_efficiency(model, data, settings, reference=(model, base))
    assert 1e8 < interleaved.texts_per_second < 1e10 and alone.texts_per_second < 1e8
    assert 2e8 < interleaved.tokens_per_second < 2e10
    assert 1e5 < interleaved.latency_p50_ms < 1e7 and alone.latency_p50_ms < 1e5
    assert interleaved.embedding_dim == alone.embedding_dim  # its own shape, not the base's


def test_network_variants_are_timed_against_their_fp32_base() -> None:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.variants import expand_variants
    from embsel_mlflow.selection.runner import timing_references

    cfg = ModelConfig(name="m", name_or_path="m", kind="sentence_transformers")
    axes = {"precision": ["bf16"], "embedding_dtype": ["int8"], "quantization": ["int8_dynamic"]}
    expanded, _ = expand_variants({"m": cfg, "other": ModelConfig(name="o", name_or_path="o")}, axes)
    assert timing_references(expanded) == {
        "m/bf16": "m/fp32",
        "m/int8dyn": "m/fp32",
        "other/bf16": "other/fp32",
        "other/int8dyn": "other/fp32",
    }
