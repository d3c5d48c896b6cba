"""``embsel embed``: a data config's texts into the embedding cache with Ray Data, on a real local
Ray cluster (head + 1 worker), with a tiny model on the bundled retrieval demo set."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates.base import build_encoder
from embsel_mlflow.config import CacheConfig, EvaluateJobConfig
from embsel_mlflow.config.compose import to_job_config
from embsel_mlflow.config.embed import EmbedConfig
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.families import family_of, load_task_data
from embsel_mlflow.models.cache import EmbeddingCache, cache_model_key, text_hash

TINY = ["model=minilm", "model.device=cpu", "model.revision=null", "model.offline=null"]
TINY += ["data=demo_retrieval"]


def _tiny(tiny_st_dir: Path) -> list[str]:
    return [*TINY, f"model.name_or_path={tiny_st_dir}"]


def _runs(store_uri: str) -> list:
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("embsel")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def _reference(overrides: list[str]):
    """The job config, the texts by role, and what one process encodes for each of them."""
    job = to_job_config(compose_config("evaluate", overrides), EvaluateJobConfig, "evaluate")
    data = load_task_data(job.data)
    texts = family_of(data).texts(data.examples)
    model = build_encoder(job.model)
    single = {role: model.encode(role_texts, role=role) for role, role_texts in texts.items()}
    return job, texts, single, cache_model_key(model.identity, model.source)


def _assert_cache_equals(root: Path, key: str, texts: dict, single: dict) -> None:
    cache = EmbeddingCache(root)
    for role, role_texts in texts.items():
        found = cache.get(key, role, [text_hash(text) for text in role_texts])
        assert len(found) == len(set(role_texts)), f"{role}: {len(found)} of {len(set(role_texts))} cached"
        stored = np.stack([found[text_hash(text)] for text in role_texts])
        np.testing.assert_allclose(stored, single[role], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_embed_fills_the_cache_and_evaluate_reads_every_embedding_from_it(
    run_cli, ray_address: str, tiny_st_dir: Path, store_uri: str, tmp_path: Path
) -> None:
    root = tmp_path / "shared-cache"
    common = [*_tiny(tiny_st_dir), f"tracking.uri={store_uri}", f"cache.dir={root}"]
    embedded = run_cli(
        "embed", *common, f"embed.ray_address={ray_address}", "embed.batch_size=8", "embed.actors=2"
    )
    assert embedded.returncode == 0, embedded.stderr
    assert "60 texts (20 query, 40 document): 0 already cached, 60 encoded" in embedded.stdout
    _, texts, single, key = _reference(_tiny(tiny_st_dir))
    _assert_cache_equals(root, key, texts, single)

    scored = run_cli("evaluate", *common, "evaluation.show_progress=false")
    assert scored.returncode == 0, scored.stderr
    embed_run, evaluate_run = _runs(store_uri)
    assert embed_run.info.status == "FINISHED"
    metrics = embed_run.data.metrics
    assert metrics["texts"] == metrics["cache_misses"] == metrics["embeddings_written"] == 60
    assert metrics["cache_hits"] == 0 and metrics["ray_nodes"] == 2 and metrics["texts_per_second"] > 0
    assert embed_run.data.tags["embsel.ray.nodes"].count("(1 CPU, 0 GPU)") == 2  # head + worker
    # every document and query of the evaluation came from the cache
    assert evaluate_run.data.metrics["cache_hits"] == 60 and evaluate_run.data.metrics["cache_misses"] == 0

    again = run_cli("embed", *common, f"embed.ray_address={ray_address}")
    assert again.returncode == 0 and "60 already cached, 0 encoded" in again.stdout


@pytest.mark.slow
def test_a_killed_actor_batch_is_retried_and_the_cache_is_complete(
    ray_address: str, tiny_st_dir: Path, tmp_path: Path
) -> None:
    from embsel_mlflow.encoding import BatchDone, encode_into_cache

    job, texts, single, key = _reference(_tiny(tiny_st_dir))
    root = tmp_path / "shared-cache"
    killed: list[int] = []
    after_kill: list[BatchDone] = []

    def kill_first_actor(done: BatchDone) -> None:
        if not killed:
            # the actor process that just encoded a batch: it has more queued
            os.kill(done.pid, signal.SIGKILL)
            killed.append(done.pid)
        else:
            after_kill.append(done)

    settings = EmbedConfig(ray_address=ray_address, actors=2, batch_size=2, max_tasks_in_flight_per_actor=2)
    report = encode_into_cache(
        job.model, texts, CacheConfig(dir=str(root)), settings, on_batch=kill_first_actor
    )
    assert killed and len(after_kill) >= 10  # the kill happened with most of the corpus still to go
    assert report.written == 60  # every batch came back exactly once, the killed one included
    pids = {pid for node_pids in report.actor_pids.values() for pid in node_pids}
    assert pids - set(killed), "no actor encoded after the kill"
    _assert_cache_equals(root, key, texts, single)
    # no temporary file of a half-written shard was left behind, and every shard reads back whole
    leftovers = [p for p in root.rglob(".tmp-*")]
    assert leftovers == []


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_bad_settings_are_one_line_and_a_failed_run(run_cli, tiny_st_dir: Path, store_uri: str) -> None:
    tiny = _tiny(tiny_st_dir)
    for args, message in (
        ([*tiny, "embed.actors=0"], "embed.actors must be >= 1"),
        ([*tiny, "embed.roles=[passage]"], "unknown role 'passage'"),
        (["model=bm25", "data=demo_retrieval"], "model.kind=bm25 ranks without embeddings"),
    ):
        result = run_cli("embed", *args, f"tracking.uri={store_uri}")
        assert result.returncode == 2, result.stdout
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0], result.stderr
        assert result.stderr.strip().splitlines()[-1] == errors[0]  # no traceback after it
    runs = _runs(store_uri)
    assert [run.info.status for run in runs] == ["FAILED"] * 3
    assert all(run.data.tags["error"] for run in runs)


def test_embed_is_a_listed_step_with_its_config(run_cli) -> None:
    cfg = compose_config("embed", ["embed.actors=4", "data=scifact"])
    assert cfg.embed.actors == 4 and cfg.data.task == "retrieval" and cfg.model.name == "minilm"
    listing = run_cli("--help")
    assert "embed" in listing.stdout and "Ray" in listing.stdout


@pytest.mark.slow
@pytest.mark.shared_data
def test_scifact_encoded_on_ray_is_what_evaluate_scores(
    run_cli, ray_address: str, shared_data_dir: Path, store_uri: str, tmp_path: Path
) -> None:
    """The bar: a Ray Data encode of SciFact's corpus (and its test queries) fills the cache; the
    following evaluate reads every document from it and scores nDCG@10 = 0.64508."""
    common = ["model=minilm", "data=scifact", f"data.root={shared_data_dir}", f"tracking.uri={store_uri}"]
    common += [f"cache.dir={tmp_path / 'shared-cache'}"]
    embedded = run_cli("embed", *common, f"embed.ray_address={ray_address}", timeout=1800)
    assert embedded.returncode == 0, embedded.stderr
    scored = run_cli("evaluate", *common, "evaluation.show_progress=false", timeout=900)
    assert scored.returncode == 0, scored.stderr
    embed_run, evaluate_run = _runs(store_uri)
    written = embed_run.data.metrics["embeddings_written"]
    assert written == embed_run.data.metrics["unique_texts"] > 5000  # 5183 documents + the test queries
    assert evaluate_run.data.metrics["cache_misses"] == 0
    assert evaluate_run.data.metrics["cache_hits"] >= written
    assert evaluate_run.data.tags["main_score_name"] == "ndcg_at_10"
    assert round(evaluate_run.data.metrics["test/ndcg_at_10"], 5) == 0.64508
