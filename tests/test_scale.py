"""A corpus searched in chunks, from memory-mapped cache shards, equals one in-memory search.

The scale benchmark (benchmarks/bench_scale.py) measures 1M documents; these tests prove on
small corpora that what it streams is exact: cached shards are mapped, not read whole, the
int8 and binary searches keep only their running top k, and every score equals the plain
in-memory search's.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from embsel_mlflow.config import EmbeddingDtype, EvaluationConfig
from embsel_mlflow.evaluation.quantized_search import QuantizedTopK
from embsel_mlflow.families import build_task
from embsel_mlflow.models.cache import CachedEncoder, EmbeddingCache, read_shard
from embsel_mlflow.models.stored_embeddings import EmbeddingFormat, StoredEmbeddingEncoder
from tests.test_evaluation import HashedBagOfWords, _retrieval_data


class _KeyedBagOfWords(HashedBagOfWords):
    """The toy encoder with the identity the cache keys on (pinned: no model files to hash)."""

    embedding_dim = 64
    identity: ClassVar[dict[str, str]] = {"name": "hashed-bag-of-words", "sha256": "0" * 64}
    source = None  # the pinned sha256 is the key: no model files to locate

    def for_dataset(self, data):
        return self


def _owner(array: np.ndarray) -> object:
    """What finally holds an array's memory (an mmap for a mapped shard)."""
    owner: object = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return owner.obj if isinstance(owner, memoryview) else owner


def _cfg(chunk: int) -> EvaluationConfig:
    return EvaluationConfig(show_progress=False, corpus_chunk_size=chunk)


def _format(dtype: EmbeddingDtype, rescore: int = 0) -> EmbeddingFormat:
    calibration = HashedBagOfWords().encode([f"w{i} w{i + 1} w{i * 3}" for i in range(300)])
    ranges = np.vstack([calibration.min(axis=0), calibration.max(axis=0)])
    keeps = dtype is EmbeddingDtype.int8 or rescore > 0
    return EmbeddingFormat(dtype, ranges=ranges if keeps else None, rescore_multiplier=rescore)


def test_read_shard_maps_the_file_and_get_copies_only_the_rows_asked_for(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    matrix = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    hashes = [i.to_bytes(16, "little") for i in range(40)]
    cache.put("model", "document", hashes, matrix)
    (shard,) = (tmp_path / "embeddings" / "model" / "document").glob("*.emb")
    read_hashes, mapped = read_shard(shard)
    assert read_hashes == hashes
    assert isinstance(_owner(mapped), mmap.mmap) and not mapped.flags.writeable  # no copy of the file
    np.testing.assert_array_equal(mapped, matrix)
    found = cache.get("model", "document", [hashes[3], hashes[17]])
    np.testing.assert_array_equal(found[hashes[17]], matrix[17])
    assert not isinstance(_owner(found[hashes[3]]), mmap.mmap)
    assert found[hashes[3]].flags.writeable  # copied out of the mapping


@pytest.mark.parametrize(
    ("dtype", "rescore"),
    [(EmbeddingDtype.int8, 0), (EmbeddingDtype.binary, 0), (EmbeddingDtype.binary, 3)],
)
def test_quantized_search_in_chunks_equals_one_search(dtype: EmbeddingDtype, rescore: int) -> None:
    rng = np.random.default_rng(8)
    queries = rng.normal(size=(31, 64)).astype(np.float32)
    docs = rng.normal(size=(2_000, 64)).astype(np.float32)
    fmt = _format(dtype, rescore)
    whole, chunked = QuantizedTopK(fmt, queries, 10), QuantizedTopK(fmt, queries, 10)
    whole.add(docs)
    for start in range(0, len(docs), 170):
        chunked.add(docs[start : start + 170])
    scores, indices = chunked.result()
    expected_scores, expected_indices = whole.result()
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(indices, expected_indices)  # ties (common in Hamming) by index too
    assert chunked.stored_bytes == whole.stored_bytes == 2_000 * fmt.bytes_per_vector(64)
    if dtype is EmbeddingDtype.binary and rescore == 0:
        # exact: the k smallest (distance, index) pairs of the full distance matrix
        distances = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
        keys = distances * len(docs) + np.arange(len(docs))
        np.testing.assert_array_equal(indices, np.argsort(keys, axis=1)[:, :10])


@pytest.mark.parametrize("dtype", [EmbeddingDtype.float32, EmbeddingDtype.int8, EmbeddingDtype.binary])
def test_retrieval_streamed_from_cache_shards_equals_in_memory_search(
    tmp_path: Path, dtype: EmbeddingDtype
) -> None:
    data = _retrieval_data(n_docs=300, n_queries=20)

    def candidate(cache: EmbeddingCache | None):
        model = _KeyedBagOfWords() if cache is None else CachedEncoder(_KeyedBagOfWords(), cache)
        if dtype is EmbeddingDtype.float32:
            return model
        return StoredEmbeddingEncoder(model, _format(dtype, rescore=2), QuantizedTopK)

    in_memory = build_task(data, _cfg(100_000)).evaluate(candidate(None))  # one chunk, no cache
    cache = EmbeddingCache(tmp_path)
    cold = build_task(data, _cfg(40)).evaluate(candidate(cache))
    shards = list((tmp_path / "embeddings").rglob("*.emb"))
    assert len(shards) == 1 + 8  # the queries, then one shard per corpus chunk of 40 (300 docs)
    warm_encoder = candidate(EmbeddingCache(tmp_path))  # a fresh process's view: shards read, mapped
    warm = build_task(data, _cfg(40)).evaluate(warm_encoder)
    cached = warm_encoder if isinstance(warm_encoder, CachedEncoder) else warm_encoder._base
    assert (cached.hits, cached.misses) == (320, 0)
    assert cold.scores == warm.scores == in_memory.scores
    assert cold.per_item["top_doc_ids"].tolist() == in_memory.per_item["top_doc_ids"].tolist()


def _bench_scale():
    path = Path(__file__).parents[1] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_corpora_are_scifact_plus_distinct_distractors_and_prefixes(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    bench = _bench_scale()
    roots = bench.build_corpora(shared_data_dir, tmp_path, (6_000, 9_000))
    small = (roots[6_000] / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    large = (roots[9_000] / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(small) == 6_000 and len(large) == 9_000 and large[:6_000] == small
    scifact = (shared_data_dir / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert large[: len(scifact)] == scifact
    rows = [json.loads(line) for line in large]
    assert len({row["_id"] for row in rows}) == len({row["text"] for row in rows}) == 9_000
    again = bench.build_corpora(shared_data_dir, tmp_path / "again", (9_000,))  # deterministic
    assert (again[9_000] / "scifact" / "corpus.jsonl").read_bytes() == "\n".join(large).encode() + b"\n"
    for name in ("queries.jsonl", "qrels/test.tsv"):
        assert (roots[6_000] / "scifact" / name).read_bytes() == (
            shared_data_dir / "scifact" / name
        ).read_bytes()


def test_stored_embedding_variants_apply_to_kinds_without_model_variants() -> None:
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.config import ModelConfig, ModelKind, VariantConfig
    from embsel_mlflow.errors import ConfigError

    binary = VariantConfig(embedding_dtype=EmbeddingDtype.binary, rescore_multiplier=0)
    lsa = build_encoder(ModelConfig(name="lsa", name_or_path="lsa", kind=ModelKind.lsa, variant=binary))
    assert isinstance(lsa, StoredEmbeddingEncoder) and lsa.format.dtype is EmbeddingDtype.binary
    from embsel_mlflow.families.registry import get_family

    data = _retrieval_data(n_docs=120, n_queries=10)
    data.family = get_family("retrieval")
    scores = build_task(data, _cfg(50)).evaluate(lsa.for_dataset(data)).scores  # binary search over LSA
    assert 0 < scores["ndcg_at_10"] <= 1
    with pytest.raises(ConfigError, match="has no variants"):  # a model-side variant still is refused
        build_encoder(ModelConfig(name="lsa", name_or_path="lsa", kind=ModelKind.lsa, precision="bf16"))
    with pytest.raises(ConfigError, match="has no variants"):  # BM25 stores no embeddings
        build_encoder(ModelConfig(name="bm25", name_or_path="bm25", kind=ModelKind.bm25, variant=binary))


def test_corpus_texts_reads_documents_from_the_table_a_slice_at_a_time() -> None:
    import pandas as pd

    from embsel_mlflow.data import tables
    from embsel_mlflow.data.tables import Loaded, corpus_texts, documents
    from embsel_mlflow.errors import DataError

    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "title": ["T", None, "", "U", " "],
            "text": ["x", "y", "z", "", "w"],
        },
        dtype="string",
    )
    loaded = Loaded(frame, "corpus.jsonl", {"id": "_id", "title": "title", "text": "text"})
    corpus = corpus_texts(loaded, ["a", "b", "c", "d", "e"])
    expected = documents(loaded)
    assert expected == ["T x", "y", "z", "U", "w"]
    saved, tables._DOCUMENT_BATCH = tables._DOCUMENT_BATCH, 2  # several slices
    try:
        assert list(corpus.values()) == expected and list(corpus) == ["a", "b", "c", "d", "e"]
    finally:
        tables._DOCUMENT_BATCH = saved
    assert corpus["d"] == "U" and "e" in corpus and "f" not in corpus and len(corpus) == 5
    assert corpus.texts(1, 3) == ["y", "z"]
    blank = Loaded(
        frame.assign(text=["x", "", "z", "", "w"], title=["T", None, "", " ", " "]), "c.jsonl", loaded.columns
    )
    with pytest.raises(DataError, match=r"both empty in 2 document\(s\), first at row 2"):
        corpus_texts(blank, ["a", "b", "c", "d", "e"])


def test_int8_embeddings_calibrate_on_a_dataset_split(tiny_st_dir: Path, shared_data_dir: Path) -> None:
    from omegaconf import OmegaConf

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.config import CalibrationConfig, DataConfig, ModelConfig, VariantConfig

    yaml = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "stsb.yaml")
    yaml.root = str(shared_data_dir)
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), yaml))
    variant = VariantConfig(
        embedding_dtype=EmbeddingDtype.int8, calibration=CalibrationConfig(split="train", size=40)
    )
    model = build_encoder(
        ModelConfig(name="tiny", name_or_path=str(tiny_st_dir), variant=variant), calibration_data=[data]
    )
    assert isinstance(model, StoredEmbeddingEncoder)
    assert model.format.calibration is not None
    assert model.format.calibration["source"] == "stsb/train" and model.format.calibration["texts"] == 40
