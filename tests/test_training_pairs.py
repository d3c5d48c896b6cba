"""Training pairs from the task datasets (no model), the loss fit, the batch checks, hard negatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from embsel_mlflow.config import LossConfig, TrainJobConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.training.checks import check_batches
from embsel_mlflow.training.losses import LOSSES, check_loss_fits
from embsel_mlflow.training.pairs import PairKind, build_pairs, hold_out


def _data(name: str, split: str = "test"):
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.app import to_job_config

    job = to_job_config(compose_config("train", [f"data={name}"]), TrainJobConfig, "train")
    return load_task_data(job.data, split=split)


def test_retrieval_qrels_give_query_document_pairs() -> None:
    data = _data("demo_retrieval")
    pairs = build_pairs(data)
    examples = data.examples
    expected = sum(1 for judged in examples.qrels.values() for rel in judged.values() if rel > 0)
    assert pairs.kind is PairKind.positive and len(pairs) == expected
    assert set(pairs.columns["anchor"]) <= set(examples.queries.values())
    assert set(pairs.columns["positive"]) <= set(examples.corpus.values())


def test_sts_scores_are_scaled_to_unit_range_and_pair_labels_kept() -> None:
    sts = build_pairs(_data("demo_sts"))
    assert (
        sts.kind is PairKind.scored and min(sts.columns["score"]) == 0.0 and max(sts.columns["score"]) == 1.0
    )
    labelled = build_pairs(_data("demo_pair_classification"))
    assert labelled.kind is PairKind.labelled and set(labelled.columns["label"]) == {0, 1}


def test_classification_pairs_share_a_class() -> None:
    data = _data("demo_classification", split="train")
    pairs = build_pairs(data, pairs_per_class=5, seed=1)
    label_of = dict(zip(data.examples.train_texts, data.examples.train_labels, strict=True))
    assert len(pairs) == 5 * len(set(data.examples.train_labels))
    for anchor, positive in zip(pairs.columns["anchor"], pairs.columns["positive"], strict=True):
        assert anchor != positive and label_of[anchor] == label_of[positive]


def test_hold_out_splits_queries_without_overlap() -> None:
    data = _data("demo_retrieval")
    train, validation = hold_out(data, 0.25, seed=0)
    assert set(train.examples.qrels).isdisjoint(validation.examples.qrels)
    assert len(train.examples.qrels) + len(validation.examples.qrels) == len(data.examples.qrels)
    assert validation.split == "validation" and validation.examples.corpus is data.examples.corpus


def test_every_loss_fits_its_pairs_and_refuses_the_others() -> None:
    kinds = {
        PairKind.positive: build_pairs(_data("demo_retrieval")),
        PairKind.scored: build_pairs(_data("demo_sts")),
        PairKind.labelled: build_pairs(_data("demo_pair_classification")),
    }
    for name, spec in LOSSES.items():
        for kind, pairs in kinds.items():
            if kind in spec.fits:
                check_loss_fits(LossConfig(name=name), pairs)
            else:
                with pytest.raises(ConfigError, match=f"loss '{name}' needs"):
                    check_loss_fits(LossConfig(name=name), pairs)


def test_batch_checks() -> None:
    pairs = build_pairs(_data("demo_retrieval"))
    check_batches(pairs, 4, "no_duplicates")
    with pytest.raises(DataError, match="fewer than one batch"):
        check_batches(pairs, len(pairs) + 1, "batch_sampler")
    repeated = pairs.head(1)
    repeated.columns = {k: v * 10 for k, v in repeated.columns.items()}
    check_batches(repeated, 4, "batch_sampler")  # plain batches may repeat a text
    with pytest.raises(DataError, match="cannot fill a batch of 4"):
        check_batches(repeated, 4, "no_duplicates")
    with pytest.raises(ConfigError, match="unknown batch sampler"):
        check_batches(pairs, 4, "fancy")


def test_hard_negatives_come_from_the_corpus_and_are_not_the_positive(tiny_st_dir: Path) -> None:
    from embsel_mlflow.config import HardNegativesConfig, ModelConfig
    from embsel_mlflow.models.encoder import load_encoder
    from embsel_mlflow.training.hard_negatives import add_hard_negatives

    data = _data("demo_retrieval")
    pairs = build_pairs(data)
    encoder = load_encoder(ModelConfig(name="tiny", name_or_path=str(tiny_st_dir)))
    cfg = HardNegativesConfig(enabled=True, range_min=0, range_max=10, relative_margin=None)
    mined = add_hard_negatives(pairs, encoder, data, cfg)
    assert mined.kind is PairKind.positive and "negative_1" in mined.columns and len(mined) > 0
    corpus = set(data.examples.corpus.values())
    for positive, negative in zip(mined.columns["positive"], mined.columns["negative_1"], strict=True):
        assert negative in corpus and negative != positive


def test_hard_negatives_are_mined_through_the_encoders_cache(tiny_st_dir: Path, tmp_path: Path) -> None:
    from embsel_mlflow.config import HardNegativesConfig, ModelConfig
    from embsel_mlflow.models.cache import CachedEncoder, EmbeddingCache
    from embsel_mlflow.models.encoder import load_encoder
    from embsel_mlflow.training.hard_negatives import add_hard_negatives

    data = _data("demo_retrieval")
    pairs = build_pairs(data)
    encoder = CachedEncoder(
        load_encoder(ModelConfig(name="tiny", name_or_path=str(tiny_st_dir))), EmbeddingCache(tmp_path)
    )
    corpus = list(data.examples.corpus.values())
    encoder.encode(corpus, role="document")  # what evaluate encodes for this dataset
    misses = encoder.misses
    cfg = HardNegativesConfig(enabled=True, range_min=0, range_max=10, relative_margin=None)
    mined = add_hard_negatives(pairs, encoder, data, cfg)
    assert "negative_1" in mined.columns and len(mined) > 0
    assert encoder.hits >= len(set(corpus))  # the corpus came from the cache, in the document role
    assert encoder.misses - misses == len(set(pairs.columns["anchor"]))  # only the anchors were encoded
