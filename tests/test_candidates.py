"""Candidate kinds behind one protocol: transformers, static (model2vec), LSA, BM25, hub configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from embsel_mlflow.candidates.base import build_encoder
from embsel_mlflow.config import (
    Bm25Config,
    CacheConfig,
    LsaConfig,
    ModelConfig,
    StaticConfig,
    TrackingConfig,
)
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.evaluation.base import TextEncoder
from embsel_mlflow.families import build_task, load_task_data
from embsel_mlflow.models.base import EmbeddingModel, Ranker
from embsel_mlflow.models.cache import EmbeddingCache, open_cache
from embsel_mlflow.models.lsa import fit_texts

TEXTS = ["A man is playing a guitar.", "The cat sat on the mat.", "Heavy rain caused flooding."]


def _job(*overrides: str):
    return OmegaConf.to_object(compose_config("evaluate", [*overrides, "evaluation.show_progress=false"]))


def _evaluate(candidate, data: str):
    job = _job(f"data={data}")
    task_data = load_task_data(job.data)
    return build_task(task_data, job.evaluation).evaluate(candidate.for_dataset(task_data))


@pytest.fixture(scope="module")
def static_cfg(tiny_bert_dir: Path) -> ModelConfig:
    return ModelConfig(
        name="tiny_static",
        name_or_path=str(tiny_bert_dir),
        kind="static",
        static=StaticConfig(pca_dims=16),
    )


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embsel-models")


# --- static -----------------------------------------------------------------------------------


def test_static_is_distilled_once_then_reused(static_cfg, models_dir: Path) -> None:
    cache = EmbeddingCache(models_dir)
    first = build_encoder(static_cfg, cache=cache).inner
    assert isinstance(first, EmbeddingModel) and isinstance(first, TextEncoder)
    weights = first.model_dir / "model.safetensors"
    assert weights.is_file() and first.model_dir.is_relative_to(cache.models_dir)
    written = weights.stat().st_mtime_ns
    second = build_encoder(static_cfg, cache=cache).inner
    assert second.model_dir == first.model_dir and weights.stat().st_mtime_ns == written  # not re-distilled
    assert second.source.sha256 == first.source.sha256
    embeddings = second.encode(TEXTS)
    assert embeddings.shape == (3, 16) and embeddings.dtype == np.float32
    assert first.registrable and first.embedding_dim == 16 and first.num_parameters > 0
    assert 0 < first.disk_size_bytes < 1_000_000


def test_static_settings_change_the_distilled_model(static_cfg, models_dir: Path) -> None:
    cache = EmbeddingCache(models_dir)
    other = ModelConfig(**{**vars(static_cfg), "static": StaticConfig(pca_dims=8)})
    a, b = build_encoder(static_cfg, cache=cache).inner, build_encoder(other, cache=cache).inner
    assert a.model_dir != b.model_dir and b.embedding_dim == 8


def test_static_evaluates_through_the_task_path(static_cfg, models_dir: Path) -> None:
    candidate = build_encoder(static_cfg, cache=EmbeddingCache(models_dir))
    result = _evaluate(candidate, "demo_sts")
    assert -1 <= result.main_score <= 1 and result.num_texts_encoded > 0


EDGE_TEXTS = [
    "",
    "   ",
    "[UNK] and [CLS] typed by a user",
    "héllo wörld ✓ 🙂 naïve café",
    "Tab\there\x0bvertical\x0c feed\x00nul",
    "Don't STOP!!! e-mail@x.com 3.14 (yes) CamelCase_snake-kebab",
    "x" * 150 + " a very long word above",
    "Ünïcode\u00a0nbsp and\u200bzero width 中文字符 ΟΔΟΣ x\u0301y (β-cell) 10×10 µm a \u0301 b \x1f sep",
    "word " * 700,
]


def test_static_encoding_equals_model2vecs_own(static_cfg, models_dir: Path) -> None:
    """The fast path (word-piece memo + one sparse product) returns model2vec's encode, bit for bit."""
    from embsel_mlflow.models.base import as_float32, l2_normalized

    encoder = build_encoder(static_cfg, cache=EmbeddingCache(models_dir)).inner
    pooling, model = encoder._pooling, encoder.model
    assert pooling is not None  # a BERT-style tokenizer: the memo applies
    job = _job("data=demo_retrieval")
    examples = load_task_data(job.data).examples
    texts = [*TEXTS, *examples.corpus.values(), *examples.queries.values(), *EDGE_TEXTS]
    for max_length in (512, 8, None):
        expected = model.encode(texts, max_length=max_length)
        got = pooling.encode(texts, max_length)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), max_length
    assert len(pooling._pieces) > 0  # words were split and remembered, not all sent to the tokenizer
    expected = as_float32(model.encode(texts, max_length=512), len(texts))
    expected = l2_normalized(expected) if static_cfg.normalize else expected
    assert np.array_equal(encoder.encode(texts), expected)


def test_static_refuses_a_hub_teacher_offline(tmp_path: Path) -> None:
    cfg = ModelConfig(name="s", name_or_path="embsel-tests/no-such-teacher", kind="static")
    with pytest.raises(ModelError, match="teacher must be a local copy"):
        build_encoder(cfg, cache=EmbeddingCache(tmp_path))


# --- LSA --------------------------------------------------------------------------------------


def test_lsa_fits_on_texts_never_labels() -> None:
    job = _job("data=demo_classification")
    data = load_task_data(job.data)
    texts, what = fit_texts(data)
    assert texts == data.examples.train_texts and what == "train texts"
    assert not set(data.examples.test_labels) & set(texts)
    retrieval = load_task_data(_job("data=demo_retrieval").data)
    texts, what = fit_texts(retrieval)
    assert texts == list(retrieval.examples.corpus.values()) and what == "corpus"
    assert not set(retrieval.examples.queries.values()) & set(texts)


@pytest.mark.parametrize("data", ["demo_sts", "demo_retrieval", "demo_classification", "demo_clustering"])
def test_lsa_evaluates_on_every_task(data: str) -> None:
    candidate = build_encoder(_job("model=lsa").model)
    with pytest.raises(ModelError, match="not fitted"):
        candidate.encode(TEXTS)
    job = _job("model=lsa", f"data={data}")
    task_data = load_task_data(job.data)
    fitted = candidate.for_dataset(task_data)
    assert fitted is not candidate and not fitted.registrable
    assert fitted.identity["fitted_on"].startswith(task_data.name)
    result = build_task(task_data, job.evaluation).evaluate(fitted)
    assert np.isfinite(result.main_score)
    assert fitted.embedding_dim == fitted.encode(TEXTS).shape[1] <= 256


def test_lsa_beats_chance_on_retrieval() -> None:
    """Lexical overlap finds the relevant demo documents: far above a random ranking."""
    result = _evaluate(build_encoder(_job("model=lsa").model), "demo_retrieval")
    assert result.main_score > 0.5


def test_lsa_fit_is_deterministic_and_cached_per_fit(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    job = _job("model=lsa", "data=demo_sts")
    data = load_task_data(job.data)
    first = build_encoder(job.model, cache=cache).for_dataset(data)
    a = first.encode(TEXTS)
    (stored,) = (tmp_path / "models" / "lsa").glob("*.npz")  # the fit is kept as plain arrays
    written = stored.stat().st_mtime_ns
    second = build_encoder(job.model, cache=cache).for_dataset(data)
    assert np.array_equal(second.encode(TEXTS), a) and second.hits == 3
    assert stored.stat().st_mtime_ns == written  # loaded, not refitted
    assert np.array_equal(second.inner.encode(TEXTS), first.inner.encode(TEXTS))
    stored.write_bytes(b"damaged")  # an unreadable fit is refitted, not trusted
    third = build_encoder(job.model, cache=EmbeddingCache(tmp_path)).for_dataset(data)
    np.testing.assert_allclose(third.inner.encode(TEXTS), a, atol=1e-6)
    other = build_encoder(job.model, cache=cache).for_dataset(
        load_task_data(_job("data=demo_clustering").data)
    )
    other.encode(TEXTS)
    assert other.hits == 0  # fitted on other texts: another model


def test_lsa_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fit_on"):
        build_encoder(
            ModelConfig(name="l", name_or_path="x", kind="lsa", lsa=LsaConfig(fit_on="test_labels"))
        )


# --- BM25 -------------------------------------------------------------------------------------


def test_bm25_ranks_lexically() -> None:
    ranker = build_encoder(_job("model=bm25").model, cache=open_cache(CacheConfig()))
    assert isinstance(ranker, Ranker) and not ranker.registrable
    corpus = ["the stock market fell", "a man plays the guitar on stage", "guitars and drums", "rain"]
    scores, indices = ranker.rank(["who is playing guitar", "market crash"], corpus, 2)
    assert indices.shape == scores.shape == (2, 2)
    assert indices[0, 0] == 1 and indices[1, 0] == 0
    assert scores[0, 0] >= scores[0, 1]


def test_bm25_evaluates_retrieval_through_the_same_scoring() -> None:
    result = _evaluate(build_encoder(_job("model=bm25").model), "demo_retrieval")
    assert result.main_score_name == "ndcg_at_10" and result.main_score > 0.5
    assert result.num_texts_encoded > 0 and result.per_item is not None


def test_bm25_on_a_non_retrieval_task_is_one_line_error(store_uri: str) -> None:
    from embsel_mlflow.jobs.evaluate import evaluate_job

    args = ["model=bm25", "data=demo_sts"]
    with pytest.raises(ConfigError, match="retrieval tasks only") as info:
        evaluate_job(compose_config("evaluate", args), TrackingConfig(uri=store_uri), args)
    assert "\n" not in str(info.value)
    (run,) = MlflowClient(store_uri).search_runs(
        [MlflowClient(store_uri).get_experiment_by_name("embsel").experiment_id]
    )
    assert run.info.status == "FAILED" and "retrieval tasks only" in run.data.tags["error"]


def test_bm25_needs_stemmer_language() -> None:
    with pytest.raises(ConfigError, match="PyStemmer language"):
        build_encoder(
            ModelConfig(name="b", name_or_path="x", kind="bm25", bm25=Bm25Config(stemmer="klingon"))
        )


# --- transformer candidates -------------------------------------------------------------------


def test_transformer_candidates_follow_the_protocol(tiny_st_dir: Path) -> None:
    candidate = build_encoder(ModelConfig(name="t", name_or_path=str(tiny_st_dir), device="cpu"))
    assert isinstance(candidate, EmbeddingModel) and candidate.registrable
    assert candidate.for_dataset(load_task_data(_job("data=demo_sts").data)) is candidate
    assert candidate.disk_size_bytes > 0 and candidate.identity["sha256"] is None


def test_minilm_cls_pools_the_offline_minilm_with_cls() -> None:
    job = _job("model=minilm_cls")
    assert job.model.kind == "transformers" and job.model.pooling == "cls"
    cls = build_encoder(job.model)
    mean = build_encoder(_job("model=minilm").model)
    assert cls.source == mean.source and cls.source.origin == "offline_package"  # same verified weights
    a, b = cls.encode(TEXTS), mean.encode(TEXTS)
    assert a.shape == b.shape == (3, 384) and not np.allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


HUB_CONFIGS = {
    # config: (hub id, query prompt, document prompt, symmetric prompt) from the model cards
    "mpnet": ("sentence-transformers/all-mpnet-base-v2", None, None, None),
    "bge_small": (
        "BAAI/bge-small-en-v1.5",
        "Represent this sentence for searching relevant passages: ",
        None,
        None,
    ),
    "bge_base": (
        "BAAI/bge-base-en-v1.5",
        "Represent this sentence for searching relevant passages: ",
        None,
        None,
    ),
    "e5_small": ("intfloat/e5-small-v2", "query: ", "passage: ", "query: "),
    "e5_base": ("intfloat/e5-base-v2", "query: ", "passage: ", "query: "),
    "gte_small": ("thenlper/gte-small", None, None, None),
    "nomic_embed": (
        "nomic-ai/nomic-embed-text-v1.5",
        "search_query: ",
        "search_document: ",
        "classification: ",
    ),
}


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_hub_configs_have_the_model_card_prompts(name: str) -> None:
    model = _job(f"model={name}").model
    assert (model.name_or_path, model.query_prompt, model.document_prompt, model.symmetric_prompt) == (
        HUB_CONFIGS[name]
    )
    assert model.trust_remote_code is False  # nomic needs it: the user must opt in


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_hub_configs_offline_fail_with_one_line(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty HF cache: nothing to fall back to
    with pytest.raises(ModelError) as info:
        build_encoder(_job(f"model={name}").model)
    message = str(info.value)
    assert "\n" not in message and HUB_CONFIGS[name][0] in message and "model.name_or_path" in message


# --- real data (slow) -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared_data
def test_offline_candidates_on_real_data(shared_data_dir: Path, tmp_path: Path) -> None:
    """BM25 on SciFact near BEIR's published 0.665; LSA and the static model below MiniLM on STS-B."""
    cache = EmbeddingCache(tmp_path / "cache")

    def score(model: str, data: str) -> float:
        job = _job(f"model={model}", f"data={data}", f"data.root={shared_data_dir}")
        task_data = load_task_data(job.data)
        candidate = build_encoder(job.model, cache=cache).for_dataset(task_data)
        return build_task(task_data, job.evaluation).evaluate(candidate).main_score

    assert score("bm25", "scifact") == pytest.approx(0.6863, abs=0.005)  # BEIR (Elasticsearch): 0.665
    lsa, static = score("lsa", "stsb"), score("static_minilm", "stsb")
    assert lsa == pytest.approx(0.5713, abs=0.01) and static == pytest.approx(0.6608, abs=0.01)
    assert lsa < static < 0.82032  # MiniLM's STS-B score
