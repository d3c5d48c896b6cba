"""Every evaluation task end to end, with a deterministic toy encoder (no model download)."""

from __future__ import annotations

import hashlib
import textwrap

import numpy as np
import pytest

from embsel_mlflow.config import EvaluationConfig, MetricSpec, TaskType
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.errors import ConfigError, DataError, ModelError
from embsel_mlflow.evaluation import EvalTask, TaskResult, TextEncoder
from embsel_mlflow.evaluation.search import cosine_top_k
from embsel_mlflow.families import (
    TASKS,
    ClassificationExamples,
    ClusteringExamples,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    build_task,
)

DIM = 64


class HashedBagOfWords:
    """A deterministic TextEncoder: the sum of one hashed random vector per word.

    Random (not one-hot) word vectors keep similarity scores free of exact ties, so rankings
    are unique and comparisons with independent computations are exact. Records every call.
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls: list[tuple[str | None, int]] = []

    def word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.md5(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self.dim)

    def encode(self, texts, *, role=None, show_progress=False) -> np.ndarray:
        self.calls.append((role, len(texts)))
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row] += self.word_vector(word)
        return out.astype(np.float32)


def _cfg(**overrides) -> EvaluationConfig:
    return EvaluationConfig(show_progress=False, **overrides)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _sentences(rng, n: int, vocab: int = 40, length: int = 6) -> list[str]:
    return [" ".join(f"w{w}" for w in rng.integers(0, vocab, size=length)) for _ in range(n)]


def _sts_data(n: int = 40) -> TaskData:
    rng = np.random.default_rng(0)
    s1 = _sentences(rng, n)
    # second sentence keeps a varying number of the first one's words
    keep = rng.integers(0, 6, size=n)  # never all six words: identical pairs would tie at cosine 1
    s2 = [
        " ".join(a.split()[:k] + b.split()[k:]) for a, b, k in zip(s1, _sentences(rng, n), keep, strict=True)
    ]
    gold = keep * 5 / 6 + rng.normal(scale=0.3, size=n)
    return TaskData("toy-sts", TaskType.sts, "test", STSExamples(s1, s2, gold))


def _pair_data(n: int = 40) -> TaskData:
    rng = np.random.default_rng(1)
    s1 = _sentences(rng, n)
    labels = rng.integers(0, 2, size=n)
    s2 = [
        " ".join(a.split()[:4] + b.split()[4:]) if y else b
        for a, b, y in zip(s1, _sentences(rng, n), labels, strict=True)
    ]
    return TaskData(
        "toy-pairs", TaskType.pair_classification, "test", PairClassificationExamples(s1, s2, labels)
    )


def _labelled_texts(rng, n: int, labels=("sports", "money", "travel", "food")) -> tuple[list[str], list[str]]:
    ys = [labels[i] for i in rng.integers(0, len(labels), size=n)]
    texts = [f"{y} {y}x " + " ".join(_sentences(rng, 1, length=4)) for y in ys]
    return texts, ys


def _classification_data() -> TaskData:
    rng = np.random.default_rng(2)
    train_texts, train_labels = _labelled_texts(rng, 80)
    test_texts, test_labels = _labelled_texts(rng, 30)
    examples = ClassificationExamples(train_texts, train_labels, test_texts, test_labels)
    return TaskData("toy-intents", TaskType.classification, "test", examples)


def _clustering_data() -> TaskData:
    texts, labels = _labelled_texts(np.random.default_rng(3), 60)
    return TaskData("toy-clusters", TaskType.clustering, "test", ClusteringExamples(texts, labels))


def _retrieval_data(n_docs: int = 120, n_queries: int = 15) -> TaskData:
    rng = np.random.default_rng(4)
    corpus = {f"d{i}": text for i, text in enumerate(_sentences(rng, n_docs, vocab=200, length=8))}
    queries, qrels = {}, {}
    for q in range(n_queries):
        target = f"d{q * 7}"
        queries[f"q{q}"] = " ".join(corpus[target].split()[:4])
        qrels[f"q{q}"] = {target: 2, f"d{q * 7 + 1}": 1}
    return TaskData("toy-retrieval", TaskType.retrieval, "test", RetrievalExamples(corpus, queries, qrels))


def _local_metric(tmp_path, name: str, body: str) -> str:
    """Write a small evaluate module script to tmp_path/<name>/<name>.py; return the directory."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return str(folder)


MEAN_ABS_GAP = """
    import datasets
    import evaluate
    import numpy as np


    class MeanAbsGap(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description="mean absolute gap",
                citation="",
                inputs_description="",
                features=datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            )

        def _compute(self, predictions, references, scale=1.0):
            gap = np.abs(np.asarray(predictions) - np.asarray(references))
            return {"gap": float(gap.mean() * scale), "note": "not a number"}
"""

# --------------------------------------------------------------------------- the task abstraction


def test_every_task_type_has_a_task_and_the_toy_encoder_fits_the_protocol():
    assert set(TASKS) == set(TaskType)
    assert all(issubclass(cls, EvalTask) for cls in TASKS.values())
    assert isinstance(HashedBagOfWords(), TextEncoder)


def test_wrong_examples_for_the_task_type_is_a_data_error():
    data = _sts_data()
    data.task = TaskType.clustering
    with pytest.raises(DataError, match="ClusteringExamples"):
        build_task(data, _cfg())


def test_encoder_returning_the_wrong_shape_is_a_model_error():
    class Broken(HashedBagOfWords):
        def encode(self, texts, *, role=None, show_progress=False):
            return super().encode(texts)[:-1]

    with pytest.raises(ModelError, match="one row per text"):
        build_task(_sts_data(), _cfg()).evaluate(Broken())


# --------------------------------------------------------------------------- STS


def test_sts_end_to_end_matches_an_independent_computation():
    from scipy.stats import pearsonr, spearmanr

    data = _sts_data()
    encoder = HashedBagOfWords()
    result = build_task(data, _cfg()).evaluate(encoder)
    ex = data.examples
    e1, e2 = encoder.encode(ex.s1), encoder.encode(ex.s2)
    cosine = _cosine(e1, e2)
    assert isinstance(result, TaskResult)
    assert (result.task, result.dataset, result.split) == ("sts", "toy-sts", "test")
    assert result.main_score_name == "cosine_spearman"
    assert result.main_score == pytest.approx(spearmanr(ex.scores, cosine)[0], abs=1e-6)
    assert result.scores["cosine_pearson"] == pytest.approx(pearsonr(ex.scores, cosine)[0], abs=1e-6)
    l1 = -np.abs(e1 - e2).sum(1)
    assert result.scores["manhattan_spearman"] == pytest.approx(spearmanr(ex.scores, l1)[0], abs=1e-9)
    dot = (e1.astype(np.float64) * e2).sum(1)
    assert result.scores["dot_pearson"] == pytest.approx(pearsonr(ex.scores, dot)[0], abs=1e-6)
    assert result.main_score > 0.5
    assert result.num_texts_encoded == 80 and result.encode_seconds > 0
    assert [role for role, _ in encoder.calls[:2]] == [None, None]
    assert list(result.per_item.columns) == ["sentence1", "sentence2", "gold_score", "cosine_score"]
    assert np.allclose(result.per_item["cosine_score"], cosine, atol=1e-6)


def test_sts_constant_gold_scores_are_a_data_error():
    data = _sts_data()
    data.examples.scores = np.full(len(data.examples.s1), 3.0)
    with pytest.raises(DataError, match="not all equal"):
        build_task(data, _cfg())


# --------------------------------------------------------------------------- pair classification


def test_pair_classification_end_to_end_matches_brute_force():
    from sklearn.metrics import average_precision_score

    data = _pair_data()
    encoder = HashedBagOfWords()
    result = build_task(data, _cfg()).evaluate(encoder)
    labels = data.examples.labels
    cosine = _cosine(encoder.encode(data.examples.s1), encoder.encode(data.examples.s2))
    assert result.main_score_name == "cosine_ap"
    assert result.main_score == pytest.approx(average_precision_score(labels, cosine), abs=1e-9)
    # brute force: every cut between distinct sorted scores, predicted positive above it
    cuts = np.unique(cosine)
    best = max(((cosine > c) == labels).mean() for c in np.concatenate([[cuts[0] - 1], cuts]))
    assert result.scores["cosine_accuracy"] == pytest.approx(best)
    assert result.scores["max_ap"] == max(
        result.scores[f"{s}_ap"] for s in ("cosine", "dot", "manhattan", "euclidean")
    )
    table = result.per_item
    assert (table["predicted"] == table["label"]).mean() == pytest.approx(result.scores["cosine_accuracy"])


def test_pair_labels_must_be_binary():
    data = _pair_data()
    data.examples.labels = np.full(len(data.examples.s1), 2)
    with pytest.raises(DataError, match="0 or 1"):
        build_task(data, _cfg())


# --------------------------------------------------------------------------- classification


def test_classification_end_to_end_follows_the_mteb_protocol():
    from sklearn.linear_model import LogisticRegression

    data = _classification_data()
    ex = data.examples
    encoder = HashedBagOfWords()
    result = build_task(data, _cfg(n_experiments=1)).evaluate(encoder)

    # the protocol written out independently for one experiment
    idxs = list(range(len(ex.train_texts)))
    np.random.RandomState(42).shuffle(idxs)
    chosen, counts = [], {}
    for i in idxs:
        if counts.get(ex.train_labels[i], 0) < 8:
            chosen.append(i)
            counts[ex.train_labels[i]] = counts.get(ex.train_labels[i], 0) + 1
    classifier = LogisticRegression(max_iter=100, random_state=42)
    classifier.fit(
        encoder.encode([ex.train_texts[i] for i in sorted(chosen)]),
        [ex.train_labels[i] for i in sorted(chosen)],
    )
    predicted = classifier.predict(encoder.encode(ex.test_texts))
    assert result.main_score == pytest.approx((predicted == np.array(ex.test_labels)).mean())
    assert list(result.per_item["predicted"]) == list(predicted)
    assert result.num_texts_encoded == len(chosen) + len(ex.test_texts)


def test_classification_encodes_the_union_of_samples_once_and_averages_experiments():
    data = _classification_data()
    encoder = HashedBagOfWords()
    one = build_task(data, _cfg(n_experiments=1)).evaluate(HashedBagOfWords())
    ten = build_task(data, _cfg(n_experiments=10)).evaluate(encoder)
    assert len(encoder.calls) == 2  # union of sampled train texts, then the test texts
    assert 32 <= encoder.calls[0][1] <= len(data.examples.train_texts)
    assert set(ten.per_item["predicted"]) <= {"sports", "money", "travel", "food"}
    assert 0.3 < ten.main_score <= 1.0 and 0.3 < one.main_score <= 1.0
    assert {"accuracy", "f1", "f1_weighted"} <= set(ten.scores) and "ap" not in ten.scores


def test_classification_without_train_texts_is_a_data_error():
    data = _classification_data()
    data.examples.train_texts, data.examples.train_labels = [], []
    with pytest.raises(DataError, match="train split is empty"):
        build_task(data, _cfg())


# --------------------------------------------------------------------------- clustering


def test_clustering_end_to_end_is_seeded_and_scored_with_v_measure():
    from sklearn.metrics import v_measure_score

    data = _clustering_data()
    first = build_task(data, _cfg()).evaluate(HashedBagOfWords())
    second = build_task(data, _cfg()).evaluate(HashedBagOfWords())
    clusters = first.per_item["cluster"]
    assert first.main_score_name == "v_measure"
    assert first.main_score == pytest.approx(v_measure_score(data.examples.labels, clusters))
    assert clusters.nunique() <= 4
    assert list(clusters) == list(second.per_item["cluster"])
    assert first.main_score > 0.3


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize(("chunk", "block"), [(1, 10_000), (7, 50), (64, 10_000), (10_000, 2**25)])
def test_chunked_search_equals_full_matrix_top_k(chunk, block):
    rng = np.random.default_rng(5)
    queries = rng.normal(size=(23, 12)).astype(np.float32)
    corpus = rng.normal(size=(157, 12)).astype(np.float32)
    scores, indices = cosine_top_k(queries, corpus, 10, corpus_chunk_size=chunk, max_block_elements=block)
    full = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    ).T
    expected = np.argsort(-full, axis=1)[:, :10]
    assert indices.shape == (23, 10)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), atol=1e-6)


def test_search_keeps_all_documents_when_k_exceeds_the_corpus():
    rng = np.random.default_rng(6)
    scores, indices = cosine_top_k(rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), 100, corpus_chunk_size=2)
    assert indices.shape == (3, 5)
    assert all(sorted(row) == [0, 1, 2, 3, 4] for row in indices.tolist())
    assert (np.diff(scores, axis=1) <= 0).all()


# --------------------------------------------------------------------------- retrieval


def test_retrieval_end_to_end_chunked_equals_one_chunk():
    data = _retrieval_data()
    encoder = HashedBagOfWords()
    chunked = build_task(data, _cfg(corpus_chunk_size=25)).evaluate(encoder)
    whole = build_task(data, _cfg(corpus_chunk_size=100_000)).evaluate(HashedBagOfWords())
    assert chunked.scores == whole.scores
    assert [r for r, _ in encoder.calls] == ["query"] + ["document"] * 5  # 120 docs in chunks of 25
    assert chunked.num_texts_encoded == 15 + 120
    assert chunked.main_score_name == "ndcg_at_10" and chunked.main_score > 0.5
    table = chunked.per_item
    assert list(table.columns[:5]) == ["query_id", "query", "ndcg_at_10", "recall_at_10", "mrr_at_10"]
    assert table["ndcg_at_10"].mean() == pytest.approx(chunked.scores["ndcg_at_10"])
    assert all(len(top) == 10 for top in table["top_doc_ids"])
    for k in (1, 3, 5, 10, 100):
        assert {f"ndcg_at_{k}", f"map_at_{k}", f"recall_at_{k}", f"precision_at_{k}", f"mrr_at_{k}"} <= set(
            chunked.scores
        )


def test_retrieval_ignore_identical_ids_drops_the_query_itself():
    data = _retrieval_data()
    ex = data.examples
    ex.corpus["q3"] = ex.queries["q3"]  # a document with the query's id and text: its best hit
    kept = build_task(data, _cfg()).evaluate(HashedBagOfWords()).per_item.set_index("query_id")
    dropped = build_task(data, _cfg(ignore_identical_ids=True)).evaluate(HashedBagOfWords())
    assert kept.loc["q3", "top_doc_ids"][0] == "q3"
    table = dropped.per_item.set_index("query_id")
    assert "q3" not in table.loc["q3", "top_doc_ids"]
    assert table.loc["q3", "top_doc_ids"][:9] == kept.loc["q3", "top_doc_ids"][1:10]


def test_retrieval_queries_without_qrels_are_not_evaluated():
    data = _retrieval_data()
    data.examples.qrels["q0"] = {}
    result = build_task(data, _cfg()).evaluate(HashedBagOfWords())
    assert "q0" not in set(result.per_item["query_id"]) and len(result.per_item) == 14


# --------------------------------------------------------------------------- extra metrics


def test_extra_metric_from_a_local_module(tmp_path):
    path = _local_metric(tmp_path, "mean_abs_gap", MEAN_ABS_GAP)
    data = _sts_data()
    spec = MetricSpec(path=path, name="gap", kwargs={"scale": 2.0})
    result = build_task(data, _cfg(extra_metrics=[spec])).evaluate(HashedBagOfWords())
    cosine = result.per_item["cosine_score"].to_numpy()
    assert result.scores["gap_gap"] == pytest.approx(2 * np.abs(cosine - data.examples.scores).mean())
    assert "gap_note" not in result.scores  # non-numeric outputs are not scores
    unnamed = build_task(data, _cfg(extra_metrics=[MetricSpec(path=path)])).evaluate(HashedBagOfWords())
    assert unnamed.scores["mean_abs_gap_gap"] == pytest.approx(result.scores["gap_gap"] / 2)


def test_extra_metric_is_averaged_over_classification_experiments():
    from embsel_mlflow.metrics import builtin_metric_path

    spec = MetricSpec(path=str(builtin_metric_path("classification")), name="again")
    result = build_task(_classification_data(), _cfg(n_experiments=3, extra_metrics=[spec])).evaluate(
        HashedBagOfWords()
    )
    assert result.scores["again_accuracy"] == pytest.approx(result.scores["accuracy"])
    assert result.scores["again_f1"] == pytest.approx(result.scores["f1"])


def test_extra_metric_on_the_wrong_inputs_is_a_one_line_config_error(tmp_path):
    path = _local_metric(tmp_path, "mean_abs_gap", MEAN_ABS_GAP)
    task = build_task(_clustering_data(), _cfg(extra_metrics=[MetricSpec(path=path, kwargs={"bogus": 1})]))
    with pytest.raises(ConfigError, match="extra metric 'mean_abs_gap'") as info:
        task.evaluate(HashedBagOfWords())
    assert "\n" not in str(info.value)


def test_extra_metrics_for_retrieval_fail_before_encoding():
    spec = MetricSpec(path="sts")
    with pytest.raises(ConfigError, match="not supported for retrieval"):
        build_task(_retrieval_data(), _cfg(extra_metrics=[spec]))


def test_extra_metric_with_a_missing_path_fails_at_build_time(tmp_path):
    spec = MetricSpec(path=str(tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="does not exist"):
        build_task(_sts_data(), _cfg(extra_metrics=[spec]))


# --------------------------------------------------------------------------- never a wrong number


class ConstantEncoder:
    def encode(self, texts, *, role=None, show_progress=False) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32)


def test_a_constant_model_on_sts_is_an_error_not_nan():
    with pytest.raises(DataError, match="the same cosine similarity"):
        build_task(_sts_data(), _cfg()).evaluate(ConstantEncoder())


def test_a_score_that_cannot_be_computed_is_an_error(tmp_path):
    script = tmp_path / "nan_metric.py"
    script.write_text(
        textwrap.dedent("""
        import datasets
        import evaluate

        class NanMetric(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(
                    description="", citation="", inputs_description="",
                    features=datasets.Features(
                        {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                    ),
                )

            def _compute(self, predictions, references):
                return {"value": float("nan")}
        """)
    )
    task = build_task(_sts_data(), _cfg(extra_metrics=[MetricSpec(path=str(script), name="nanny")]))
    with pytest.raises(DataError, match="nanny_value cannot be computed"):
        task.evaluate(HashedBagOfWords())


def _small_retrieval(qrels: dict) -> TaskData:
    corpus = {f"d{i}": f"document number {i}" for i in range(4)}
    queries = {"q1": "document one", "q2": "number two"}
    return TaskData("r", TaskType.retrieval, "test", RetrievalExamples(corpus, queries, qrels))


def test_qrels_without_any_relevant_document_are_an_error_and_partly_a_warning():
    with pytest.raises(DataError, match="every qrels score is 0 or negative"):
        build_task(_small_retrieval({"q1": {"d1": 0}, "q2": {"d2": -1}}), _cfg())
    task = build_task(_small_retrieval({"q1": {"d1": 1}, "q2": {"d2": 0, "d3": -1}}), _cfg())
    result = task.evaluate(HashedBagOfWords())
    counts = {w.code: w.count for w in result.warnings}
    assert counts == {"queries_without_relevant_documents": 1, "negative_qrels": 1}


def _labelled(train_labels: list[str], test_labels: list[str]) -> TaskData:
    train = [f"train text {i} {label}" for i, label in enumerate(train_labels)]
    test = [f"test text {i} {label}" for i, label in enumerate(test_labels)]
    examples = ClassificationExamples(train, train_labels, test, test_labels)
    return TaskData("c", TaskType.classification, "test", examples)


def test_test_labels_unseen_in_train_or_in_another_case():
    with pytest.raises(DataError, match="no test label occurs in the train split"):
        build_task(_labelled(["a", "b"] * 4, ["c", "d"]), _cfg())
    with pytest.raises(
        DataError, match=r"differ from a train label only in case, e\.g\. test 'A' vs train 'a'"
    ):
        build_task(_labelled(["a", "b"] * 4, ["A", "b"]), _cfg())
    task = build_task(_labelled(["a", "b", "B"] * 4, ["a", "b", "c", "c"]), _cfg(n_experiments=1))
    counts = {w.code: w.count for w in task.warnings}
    assert counts == {"labels_differ_in_case": 1, "test_labels_not_in_train": 2}
