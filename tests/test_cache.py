"""The embedding cache: hits and misses, role and model separation, corruption, concurrency, LRU."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates.base import build_encoder
from embsel_mlflow.config import CacheConfig, ModelConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.models.cache import (
    CachedEncoder,
    EmbeddingCache,
    cache_dir,
    open_cache,
    read_shard,
    text_hash,
)

TEXTS = ["A man plays a guitar.", "The cat sat on the mat.", "A man plays a guitar.", "Heavy rain fell."]


def _cfg(path: Path, **overrides) -> ModelConfig:
    return ModelConfig(name="tiny", name_or_path=str(path), device="cpu", **overrides)


@pytest.fixture
def cache(tmp_path: Path) -> EmbeddingCache:
    return EmbeddingCache(tmp_path / "cache")


def _shards(cache: EmbeddingCache) -> list[Path]:
    return sorted(cache.embeddings_dir.glob("*/*/*.emb"))


def test_second_encode_is_all_hits_with_identical_values(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    encoder = build_encoder(_cfg(tiny_st_dir), cache=cache)
    assert isinstance(encoder, CachedEncoder)
    cold = encoder.encode(TEXTS)
    assert (encoder.hits, encoder.misses) == (0, 4)
    warm = encoder.encode(TEXTS)
    assert (encoder.hits, encoder.misses) == (4, 4)
    assert warm.dtype == np.float32 and np.array_equal(cold, warm)
    # A cold call encodes exactly what an uncached model encodes.
    assert np.array_equal(cold, encoder.inner.encode(TEXTS))
    # Another process (a fresh cache object on the same dir) sees the same entries.
    again = build_encoder(_cfg(tiny_st_dir), cache=EmbeddingCache(cache.root))
    assert np.array_equal(again.encode(TEXTS), cold) and again.misses == 0


def test_repeated_texts_come_back_identical_cold_and_warm(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    # A text given twice lands in differently padded batches; the warm run must still equal the cold.
    texts = [*TEXTS, "x " * 40, TEXTS[0], TEXTS[2]]
    encoder = build_encoder(_cfg(tiny_st_dir), cache=cache)
    cold = encoder.encode(texts)
    assert np.array_equal(cold[0], cold[len(TEXTS) + 1]) and np.array_equal(cold[2], cold[-1])
    warm = encoder.encode(texts)
    assert encoder.misses == len(texts) and encoder.hits == len(texts) and np.array_equal(cold, warm)


def test_partial_hits_encode_only_the_new_texts(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    encoder = build_encoder(_cfg(tiny_st_dir), cache=cache)
    encoder.encode(TEXTS[:2])
    mixed = encoder.encode(["A new sentence.", *TEXTS[:2], "A new sentence."])
    assert (encoder.hits, encoder.misses) == (2, 2 + 2)
    reference = encoder.inner.encode(["A new sentence.", *TEXTS[:2]])
    np.testing.assert_allclose(mixed[[0, 1, 2]], reference, atol=1e-6)
    assert np.array_equal(mixed[0], mixed[3])


def test_query_and_document_embeddings_are_never_shared(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    """mteb issue 5383: with role prompts, a text's query and document embeddings differ."""
    encoder = build_encoder(
        _cfg(tiny_st_dir, query_prompt="query: ", document_prompt="passage: "), cache=cache
    )
    queries = encoder.encode(TEXTS, role="query")
    documents = encoder.encode(TEXTS, role="document")
    symmetric = encoder.encode(TEXTS)
    assert encoder.hits == 0 and encoder.misses == 12
    assert not np.allclose(queries, documents) and not np.allclose(queries, symmetric)
    assert np.array_equal(encoder.encode(TEXTS, role="document"), documents)
    assert {path.parent.name for path in _shards(cache)} == {"query", "document", "symmetric"}


@pytest.mark.parametrize(
    "change",
    [{"max_seq_length": 4}, {"symmetric_prompt": "query: "}, {"normalize": True}, {"precision": "bf16"}],
)
def test_anything_that_changes_embeddings_changes_the_key(
    tiny_st_dir: Path, cache: EmbeddingCache, change: dict
) -> None:
    base = build_encoder(_cfg(tiny_st_dir), cache=cache)
    other = build_encoder(_cfg(tiny_st_dir, **change), cache=cache)
    assert base.model_key != other.model_key
    base.encode(TEXTS)
    other.encode(TEXTS)
    assert other.hits == 0


def test_renaming_a_config_keeps_the_key(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    first = build_encoder(_cfg(tiny_st_dir), cache=cache)
    renamed = build_encoder(
        ModelConfig(name="other", name_or_path=str(tiny_st_dir), device="cpu"), cache=cache
    )
    assert first.model_key == renamed.model_key


def test_overwritten_local_weights_change_the_key(tiny_st_dir: Path, tmp_path: Path, cache) -> None:
    """A local directory overwritten in place (fine-tuning) must not serve stale embeddings."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_st_dir, copy)
    before = build_encoder(_cfg(copy), cache=cache).model_key
    weights = next(copy.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert build_encoder(_cfg(copy), cache=cache).model_key != before


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_entries_are_detected_and_recomputed(tiny_st_dir: Path, cache, damage: str) -> None:
    encoder = build_encoder(_cfg(tiny_st_dir), cache=cache)
    good = encoder.encode(TEXTS)
    (shard,) = _shards(cache)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # one bit inside the embedding matrix
    elif damage == "truncate":
        data = data[: len(data) - 7]
    else:
        data = bytearray(b"not a shard at all")
    shard.write_bytes(bytes(data))

    fresh = build_encoder(_cfg(tiny_st_dir), cache=EmbeddingCache(cache.root))
    again = fresh.encode(TEXTS)
    assert fresh.misses == 4 and fresh.hits == 0  # nothing was served from the damaged shard
    np.testing.assert_allclose(again, good, atol=1e-6)
    for path in _shards(cache):  # the damaged shard is gone; the rewrite is intact
        read_shard(path)
    assert fresh.encode(TEXTS).tolist() == again.tolist() and fresh.hits == 4


def _writer(root: str, worker: int, results: multiprocessing.Queue) -> None:
    cache = EmbeddingCache(Path(root))
    rng = np.random.default_rng(worker)
    for round_ in range(15):
        texts = [f"text {i}" for i in range(round_ * 5, round_ * 5 + 40)]  # overlapping across writers
        vectors = np.stack([_vector(text) for text in texts])
        cache.put("model", "document", [text_hash(t) for t in texts], vectors)
        if rng.random() < 0.5:
            got = cache.get("model", "document", [text_hash(t) for t in texts])
            if any(not np.array_equal(got[text_hash(t)], _vector(t)) for t in texts if text_hash(t) in got):
                results.put("wrong value")
                return
    results.put("ok")


def _vector(text: str) -> np.ndarray:
    return np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(64).astype(np.float32)


def test_concurrent_writers_never_leave_a_broken_or_wrong_entry(tmp_path: Path) -> None:
    root = tmp_path / "shared-cache"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_writer, args=(str(root), i, results)) for i in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [results.get(timeout=5) for _ in workers] == ["ok"] * 4
    cache = EmbeddingCache(root)
    assert not list(root.rglob(".tmp-*"))  # every temporary file was renamed or removed
    texts = [f"text {i}" for i in range(14 * 5 + 40)]
    got = cache.get("model", "document", [text_hash(t) for t in texts])
    assert len(got) == len(texts)
    assert all(np.array_equal(got[text_hash(t)], _vector(t)) for t in texts)
    for shard in _shards(cache):
        read_shard(shard)  # raises if any shard is torn


def test_lru_eviction_keeps_the_recently_used(tmp_path: Path) -> None:
    vectors = np.ones((100, 64), dtype=np.float32)  # one shard is about 32 KiB
    cache = EmbeddingCache(tmp_path / "c", max_size_bytes=10**9)
    for name in ("old", "used", "new"):
        cache.put(name, None, [text_hash(f"{name} {i}") for i in range(100)], vectors)
        time.sleep(0.02)
    shard_size = _shards(cache)[0].stat().st_size
    old_shard = next(cache.embeddings_dir.glob("old/*/*.emb"))
    os.utime(old_shard, (time.time() - 100, time.time() - 100))  # least recently used
    used_shard = next(cache.embeddings_dir.glob("used/*/*.emb"))
    os.utime(used_shard, (time.time() - 50, time.time() - 50))
    assert cache.get("used", None, [text_hash("used 0")])  # a read refreshes "used"

    cache.max_size_bytes = 2 * shard_size  # room for two shards
    assert cache.evict() == 1
    assert not old_shard.exists() and used_shard.exists()
    assert cache.info().shards == 2 and cache.info().size_bytes <= cache.max_size_bytes


def test_put_beyond_the_limit_evicts(tmp_path: Path) -> None:
    vectors = np.ones((100, 64), dtype=np.float32)
    cache = EmbeddingCache(tmp_path / "c", max_size_bytes=60_000)  # fits one shard of ~26 KiB twice
    for i in range(5):
        cache.put(f"m{i}", None, [text_hash(f"{i} {j}") for j in range(100)], vectors)
        time.sleep(0.02)
    assert cache.info().size_bytes <= 60_000
    assert cache.get("m4", None, [text_hash("4 0")])  # the newest survives
    assert not cache.get("m0", None, [text_hash("0 0")])


def test_cache_config_dir_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBSEL_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir(CacheConfig()) == tmp_path / "env"
    assert cache_dir(CacheConfig(dir=str(tmp_path / "cfg"))) == tmp_path / "cfg"
    monkeypatch.delenv("EMBSEL_CACHE_DIR")
    assert "embsel" in str(cache_dir(CacheConfig()))  # the user cache dir
    assert open_cache(CacheConfig(enabled=False)) is None
    with pytest.raises(ConfigError, match="max_size_gb"):
        open_cache(CacheConfig(max_size_gb=0))


def _metrics(store_uri: str) -> list[dict[str, float]]:
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("embsel")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [run.data.metrics for run in runs]


def test_evaluate_uses_the_cache_and_logs_hits_and_misses(tiny_bert_dir: Path, store_uri: str) -> None:
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.evaluate import evaluate_job

    args = [
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "model.device=cpu",
        "data=demo_retrieval",
        "evaluation.show_progress=false",
    ]
    for extra in ([], [], ["cache.enabled=false"]):
        evaluate_job(compose_config("evaluate", args + extra), TrackingConfig(uri=store_uri), args + extra)

    cold, warm, uncached = _metrics(store_uri)
    assert cold["cache_hits"] == 0 and cold["cache_misses"] > 0
    assert warm["cache_hits"] == cold["cache_misses"] and warm["cache_misses"] == 0
    assert warm["main_score"] == cold["main_score"] == uncached["main_score"]
    assert "cache_hits" not in uncached


def test_cache_info_and_clear_commands(run_cli, tiny_st_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "cli-cache"
    build_encoder(_cfg(tiny_st_dir), cache=EmbeddingCache(root)).encode(TEXTS)
    info = run_cli("cache", "info", "--dir", str(root))
    assert info.returncode == 0, info.stderr
    assert "embeddings: 3" in info.stdout and str(root) in info.stdout
    cleared = run_cli("cache", "clear", "--dir", str(root))
    assert cleared.returncode == 0 and "cleared 3 embeddings" in cleared.stdout
    assert "embeddings: 0" in run_cli("cache", "info", "--dir", str(root)).stdout
    bad = run_cli("cache", "shrink")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


def test_cache_command_refuses_a_file_as_its_dir(run_cli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "cache.txt"
    not_a_dir.write_text("not a cache")
    for action in ("info", "clear"):
        result = run_cli("cache", action, "--dir", str(not_a_dir))
        assert result.returncode == 2, result.stdout
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert "is a file, not a cache directory" in result.stderr
    assert not_a_dir.read_text() == "not a cache"  # clear left the file alone


def test_contains_reads_headers_only(tiny_st_dir: Path, cache: EmbeddingCache) -> None:
    encoder = build_encoder(_cfg(tiny_st_dir), cache=cache)
    encoder.encode(TEXTS[:2], role="document")
    hashes = [text_hash(text) for text in TEXTS]
    assert cache.contains(encoder.model_key, "document", hashes) == set(hashes[:3])  # TEXTS[2] == TEXTS[0]
    assert cache.contains(encoder.model_key, "query", hashes) == set()
