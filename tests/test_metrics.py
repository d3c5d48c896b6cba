"""The built-in evaluate modules: loading by path (offline) and hand-computed values."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.metrics import BUILTIN_METRICS, builtin_metric_path, load_metric

# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", BUILTIN_METRICS)
def test_builtin_modules_load_by_path_with_full_info(name):
    path = builtin_metric_path(name)
    assert path.is_file() and path.name == f"{name}.py"
    module = load_metric(name)
    assert module.name == name
    assert module.description.strip() and module.citation.strip() and module.inputs_description.strip()
    assert {"predictions", "references"} <= set(module.features)


def test_load_by_file_and_directory_path_gives_fresh_instances(tmp_path):
    copy = tmp_path / "sts"
    shutil.copytree(builtin_metric_path("sts").parent, copy)
    by_dir = load_metric(str(copy))
    by_file = load_metric(str(copy / "sts.py"))
    assert by_dir.name == by_file.name == "sts"
    assert load_metric("sts") is not load_metric("sts")  # no shared buffers between callers
    assert by_dir.compute(predictions=[1.0, 2.0, 3.0], references=[1.0, 2.0, 4.0])["spearman"] == 1.0


def test_missing_local_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_metric(str(tmp_path / "nowhere" / "metric.py"))


def test_unknown_hub_name_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as info:
        load_metric("embsel_no_such_module_anywhere")
    message = str(info.value)
    assert "\n" not in message
    assert "cannot load evaluate module 'embsel_no_such_module_anywhere' (offline?)" in message


def test_unknown_builtin_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown built-in metric"):
        builtin_metric_path("bleu")


# --------------------------------------------------------------------------- retrieval


def _retrieval(predictions, references, **kwargs):
    return load_metric("retrieval").compute(predictions=predictions, references=references, **kwargs)


def test_retrieval_hand_computed():
    # ranking: d1 (0.9), d2 (0.8), d3 (0.7); relevant: d2 (grade 2) and d4 (grade 1, not retrieved)
    predictions = [{"doc_ids": ["d3", "d1", "d2"], "scores": [0.7, 0.9, 0.8]}]
    references = [{"doc_ids": ["d2", "d4", "d1"], "relevance": [2, 1, 0]}]
    out = _retrieval(predictions, references, k_values=[1, 2, 3, 5])
    log2_3 = math.log2(3)
    assert out["ndcg_at_1"] == 0.0
    assert out["ndcg_at_2"] == pytest.approx((2 / log2_3) / (2 + 1 / log2_3))
    assert out["map_at_3"] == pytest.approx((1 / 2) / 2)  # precision at rank 2, over 2 relevant docs
    assert out["recall_at_3"] == pytest.approx(1 / 2)
    assert out["precision_at_3"] == pytest.approx(1 / 3)
    assert out["precision_at_5"] == pytest.approx(1 / 5)  # divides by k though only 3 were retrieved
    assert (out["mrr_at_1"], out["mrr_at_2"], out["mrr_at_5"]) == (0.0, 0.5, 0.5)
    assert out["num_queries"] == 1


def test_retrieval_ties_rank_by_doc_id_descending():
    # equal scores: "b" ranks above "a" (trec_eval order), so only "b" is in the top 1
    predictions = [{"doc_ids": ["a", "b"], "scores": [0.5, 0.5]}] * 2
    references = [{"doc_ids": ["b"], "relevance": [1]}, {"doc_ids": ["a"], "relevance": [1]}]
    out = _retrieval(predictions, references, k_values=[1], per_query=True)
    assert out["per_query"]["recall_at_1"] == [1.0, 0.0]
    assert out["per_query"]["mrr_at_1"] == [1.0, 0.0]


def test_retrieval_grades_at_or_below_zero_are_not_relevant():
    predictions = [{"doc_ids": ["x", "y"], "scores": [0.9, 0.1]}]
    references = [{"doc_ids": ["x", "y"], "relevance": [-1, 3]}]
    out = _retrieval(predictions, references, k_values=[1, 2])
    assert out["ndcg_at_2"] == pytest.approx((3 / math.log2(3)) / 3)
    assert out["recall_at_1"] == 0.0 and out["mrr_at_2"] == 0.5


def test_retrieval_per_query_values_average_to_the_scores():
    rng = np.random.default_rng(0)
    predictions, references = [], []
    for _ in range(12):
        docs = [f"d{i}" for i in rng.permutation(30)[:20]]
        predictions.append({"doc_ids": docs, "scores": rng.random(20).tolist()})
        judged = [f"d{i}" for i in rng.permutation(30)[:4]]
        references.append({"doc_ids": judged, "relevance": rng.integers(0, 3, 4).tolist()})
    out = _retrieval(predictions, references, k_values=[3, 10], per_query=True)
    for name, values in out["per_query"].items():
        assert len(values) == 12
        assert out[name] == pytest.approx(np.mean(values))


def test_retrieval_rejects_duplicate_doc_ids():
    with pytest.raises(ValueError, match="unique"):
        _retrieval([{"doc_ids": ["a", "a"], "scores": [1.0, 0.5]}], [{"doc_ids": ["a"], "relevance": [1]}])


# --------------------------------------------------------------------------- sts


def test_sts_hand_computed():
    predictions = [0.1, 0.4, 0.35, 0.9]
    references = [1.0, 2.0, 3.0, 4.0]
    out = load_metric("sts").compute(predictions=predictions, references=references)
    assert out["pearson"] == pytest.approx(np.corrcoef(predictions, references)[0, 1])
    # ranks of predictions: 1, 3, 2, 4 -> Spearman 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    assert out["spearman"] == pytest.approx(1 - 6 * 2 / 60)


# --------------------------------------------------------------------------- pair classification


def _pairs(scores, labels, **kwargs):
    return load_metric("pair_classification").compute(predictions=scores, references=labels, **kwargs)


def test_pair_classification_separable_similarities_and_distances():
    out = _pairs([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    assert (out["accuracy"], out["accuracy_threshold"], out["f1"], out["ap"]) == (1.0, 0.55, 1.0, 1.0)
    out = _pairs([0.1, 0.2, 0.7, 0.9], [1, 1, 0, 0], high_score_more_similar=False)
    assert (out["accuracy"], out["f1_threshold"], out["ap"]) == (1.0, pytest.approx(0.45), 1.0)


def test_pair_classification_threshold_never_splits_ties():
    # best split would put one of the tied 0.5 pairs on each side; it is not allowed
    out = _pairs([0.5, 0.5, 0.2], [1, 0, 0])
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["accuracy_threshold"] == pytest.approx(0.35)
    assert (out["precision"], out["recall"]) == (0.5, 1.0)
    assert out["f1"] == pytest.approx(2 / 3)


def test_pair_classification_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="0 or 1"):
        _pairs([0.1, 0.2], [0, 2])


# --------------------------------------------------------------------------- classification


def test_classification_hand_computed():
    out = load_metric("classification").compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])
    assert out["accuracy"] == 0.75
    # per-class F1: 1, 2/3 (p 1/2, r 1), 2/3 (p 1, r 1/2)
    assert out["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert out["f1_weighted"] == pytest.approx((1 * 1 + 2 / 3 * 1 + 2 / 3 * 2) / 4)
    assert out["precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert out["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert "ap" not in out  # only for binary tasks


def test_classification_binary_adds_ap_of_hard_predictions():
    out = load_metric("classification").compute(predictions=[1, 0, 1, 0], references=[1, 1, 0, 0])
    # hard predictions as scores: the two predicted-positive items hold 1 of 2 positives
    # -> precision 1/2 at recall 1/2, then 1/2 at recall 1: AP = 0.5 * 0.5 + 0.5 * 0.5
    assert out["ap"] == pytest.approx(0.5)
    assert out["accuracy"] == 0.5


# --------------------------------------------------------------------------- clustering


def test_clustering_permuted_ids_are_perfect_and_one_cluster_is_zero():
    perfect = load_metric("clustering").compute(predictions=[2, 2, 0, 0, 1], references=[0, 0, 1, 1, 2])
    assert perfect == {"v_measure": 1.0, "nmi": 1.0, "ari": 1.0, "cluster_accuracy": 1.0}
    lumped = load_metric("clustering").compute(predictions=[0, 0, 0, 0], references=[0, 0, 1, 1])
    assert lumped["v_measure"] == 0.0
    assert lumped["cluster_accuracy"] == 0.5
