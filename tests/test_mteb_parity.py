"""On the same embeddings, our numbers equal MTEB's (and pytrec_eval's).

No model is involved: texts are looked up in a fixed table of seeded random vectors, and the
very same vectors are fed to our tasks (through our TextEncoder protocol) and to MTEB 2.x's own
AbsTask classes (through MTEB's EncoderProtocol). MTEB and pytrec_eval are test extras: they
are the independent references, never imported by the library.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from embsel_mlflow.config import EvaluationConfig, TaskType
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.families import (
    ClassificationExamples,
    ClusteringExamples,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    build_task,
)
from embsel_mlflow.families.classification import experiment_samples
from embsel_mlflow.metrics import load_metric

mteb = pytest.importorskip("mteb", reason="mteb (a test extra) is the reference implementation")
pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval-terrier (a test extra) is the reference")

EXACT = 1e-12  # same inputs, same float operations: only summation order may differ
K_VALUES = [1, 3, 5, 10, 100]
DIM = 16


class TableEncoder:
    """Our TextEncoder over a fixed text -> vector table."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts, *, role=None, show_progress=False) -> np.ndarray:
        return np.stack([self.table[text] for text in texts]).astype(np.float32)


class MtebTableModel:
    """MTEB's EncoderProtocol over the same table (MTEB passes DataLoaders of text batches)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        from mteb.models.model_meta import ModelMeta

        self.encoder = TableEncoder(table)
        self._meta = ModelMeta.create_empty()

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        texts = [text for batch in inputs for text in batch["text"]]
        return self.encoder.encode(texts)

    def similarity(self, embeddings1, embeddings2):
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    @property
    def mteb_model_meta(self):
        return self._meta


def _cfg(**overrides) -> EvaluationConfig:
    return EvaluationConfig(show_progress=False, **overrides)


def _mteb_scores(task, table: dict[str, np.ndarray]) -> dict:
    scores = task.evaluate(
        MtebTableModel(table), split="test", encode_kwargs={"batch_size": 16, "show_progress_bar": False}
    )
    return dict(scores["default"])


def _assert_same(ours: dict, theirs: dict, keys, tol: float = EXACT) -> None:
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], abs=tol, rel=0), key


def _mock_metadata(mock_cls, name: str):
    return mock_cls.metadata.model_copy(update={"name": name})


# --------------------------------------------------------------------------- retrieval metrics


def _random_run(seed: int, n_queries: int = 60, n_docs: int = 150):
    """Graded qrels and rankings with deliberate score ties, unretrieved and unjudged docs."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i:03d}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.choice(docs, size=int(rng.integers(1, 12)), replace=False)
        grades = rng.integers(0, 4, size=len(judged))
        if q % 7 == 0:
            grades[:] = 0  # a query whose judged docs are all non-relevant
        qrels[f"q{q}"] = {doc: int(g) for doc, g in zip(judged, grades, strict=True)}
        retrieved = rng.choice(docs, size=int(rng.integers(1, 120)), replace=False)
        # two decimals -> many exact ties, which trec_eval breaks by doc id (descending)
        run[f"q{q}"] = {
            doc: float(round(s, 2)) for doc, s in zip(retrieved, rng.random(len(retrieved)), strict=True)
        }
    return qrels, run


def _module_inputs(qrels, run):
    qids = list(qrels)
    predictions = [{"doc_ids": list(run[q]), "scores": list(run[q].values())} for q in qids]
    references = [{"doc_ids": list(qrels[q]), "relevance": list(qrels[q].values())} for q in qids]
    return qids, predictions, references


@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_metric_equals_pytrec_eval_per_query(seed):
    qrels, run = _random_run(seed)
    qids, predictions, references = _module_inputs(qrels, run)
    ours = load_metric("retrieval").compute(
        predictions=predictions, references=references, k_values=K_VALUES, per_query=True
    )
    measures = {f"{m}." + ",".join(map(str, K_VALUES)) for m in ("ndcg_cut", "map_cut", "recall", "P")}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at"}
    for trec, family in names.items():
        for k in K_VALUES:
            theirs = [reference[q][f"{trec}_{k}"] for q in qids]
            assert ours["per_query"][f"{family}_{k}"] == pytest.approx(theirs, abs=EXACT, rel=0)
            assert ours[f"{family}_{k}"] == pytest.approx(sum(theirs) / len(theirs), abs=EXACT, rel=0)
    assert ours["num_queries"] == len(qids)


def test_retrieval_metric_equals_mteb_calculate_retrieval_scores():
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    qrels, run = _random_run(2)
    _, predictions, references = _module_inputs(qrels, run)
    ours = load_metric("retrieval").compute(predictions=predictions, references=references, k_values=K_VALUES)
    theirs = calculate_retrieval_scores(run, qrels, K_VALUES)
    for k in K_VALUES:
        # MTEB rounds these four families to 5 decimals; we keep full precision
        assert round(ours[f"ndcg_at_{k}"], 5) == theirs.ndcg[f"NDCG@{k}"]
        assert round(ours[f"map_at_{k}"], 5) == theirs.map[f"MAP@{k}"]
        assert round(ours[f"recall_at_{k}"], 5) == theirs.recall[f"Recall@{k}"]
        assert round(ours[f"precision_at_{k}"], 5) == theirs.precision[f"P@{k}"]
        assert ours[f"mrr_at_{k}"] == pytest.approx(theirs.mrr[f"MRR@{k}"], abs=EXACT, rel=0)


def test_retrieval_metric_skips_unjudged_queries_like_pytrec_eval():
    qrels, run = _random_run(3, n_queries=10)
    qids, predictions, references = _module_inputs(qrels, run)
    references[4] = {"doc_ids": [], "relevance": []}
    del qrels[qids[4]]
    ours = load_metric("retrieval").compute(
        predictions=predictions, references=references, k_values=[10], per_query=True
    )
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert qids[4] not in reference
    assert math.isnan(ours["per_query"]["ndcg_at_10"][4])
    assert ours["num_queries"] == len(reference) == 9
    mean = sum(v["ndcg_cut_10"] for v in reference.values()) / len(reference)
    assert ours["ndcg_at_10"] == pytest.approx(mean, abs=EXACT, rel=0)


# --------------------------------------------------------------------------- retrieval end to end


def _retrieval_fixture(seed: int = 0):
    """Queries near some documents; graded qrels; some doc ids equal query ids."""
    rng = np.random.default_rng(seed)
    n_docs, n_queries = 400, 40
    table = {}
    corpus = {}
    for i in range(n_docs):
        doc_id = f"q{i}" if i < 10 else f"d{i}"  # ten docs share an id with a query
        text = f"document {i}"
        corpus[doc_id] = text
        table[text] = rng.normal(size=DIM)
    queries, qrels = {}, {}
    doc_ids = list(corpus)
    for q in range(n_queries):
        qid = f"q{q}"
        relevant = rng.choice(doc_ids[10:], size=int(rng.integers(1, 5)), replace=False)
        text = f"query {q}"
        base = np.mean([table[corpus[d]] for d in relevant], axis=0)
        if q < 10:
            base = table[corpus[qid]]  # its same-id document is its nearest neighbour
        table[text] = base + rng.normal(scale=0.8, size=DIM)
        queries[qid] = text
        qrels[qid] = {str(d): int(rng.integers(0, 4)) for d in relevant}
    qrels["q39"] = {}  # MTEB drops queries without qrels; so do we
    return corpus, queries, qrels, table


def _mteb_retrieval_task(corpus, queries, qrels, ignore_identical_ids: bool):
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    class ParityRetrieval(AbsTaskRetrieval):
        metadata = _mock_metadata(MockRetrievalTask, "ParityRetrieval")

        def load_data(self, num_proc=None, **kwargs):
            split = {
                "corpus": Dataset.from_list([{"id": d, "text": t} for d, t in corpus.items()]),
                "queries": Dataset.from_list([{"id": q, "text": t} for q, t in queries.items()]),
                "relevant_docs": {q: dict(r) for q, r in qrels.items()},
                "top_ranked": None,
            }
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    task = ParityRetrieval()
    task.k_values = K_VALUES
    task._top_k = max(K_VALUES)
    task.ignore_identical_ids = ignore_identical_ids
    return task


@pytest.mark.parametrize("ignore_identical_ids", [False, True])
def test_retrieval_task_equals_mteb(ignore_identical_ids):
    corpus, queries, qrels, table = _retrieval_fixture()
    data = TaskData("parity", TaskType.retrieval, "test", RetrievalExamples(corpus, queries, qrels))
    cfg = _cfg(k_values=K_VALUES, corpus_chunk_size=64, ignore_identical_ids=ignore_identical_ids)
    ours = build_task(data, cfg).evaluate(TableEncoder(table)).scores
    theirs = _mteb_scores(_mteb_retrieval_task(corpus, queries, qrels, ignore_identical_ids), table)
    for k in K_VALUES:
        for family in ("ndcg_at", "map_at", "recall_at", "precision_at"):
            assert round(ours[f"{family}_{k}"], 5) == theirs[f"{family}_{k}"], (family, k)
        assert ours[f"mrr_at_{k}"] == pytest.approx(theirs[f"mrr_at_{k}"], abs=EXACT, rel=0)
    assert theirs["main_score"] == round(ours["ndcg_at_10"], 5)


# --------------------------------------------------------------------------- STS


def test_sts_task_equals_mteb():
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.mocks.mock_tasks.sts import MockSTSTask

    rng = np.random.default_rng(1)
    n = 80
    table, s1, s2 = {}, [], []
    gold = np.round(rng.uniform(0, 5, size=n), 1)
    for i in range(n):
        a = rng.normal(size=DIM)
        b = a + rng.normal(scale=(5.5 - gold[i]) / 2, size=DIM)
        s1.append(f"first {i}")
        s2.append(f"second {i}")
        table[s1[-1]], table[s2[-1]] = a, b

    class ParitySTS(AbsTaskSTS):
        metadata = _mock_metadata(MockSTSTask, "ParitySTS")
        min_score = float(gold.min())
        max_score = float(gold.max())

        def load_data(self, num_proc=None, **kwargs):
            frame = {"sentence1": s1, "sentence2": s2, "score": gold.tolist()}
            self.dataset = DatasetDict({"test": Dataset.from_dict(frame)})
            self.data_loaded = True

    data = TaskData("parity", TaskType.sts, "test", STSExamples(s1, s2, gold))
    ours = build_task(data, _cfg()).evaluate(TableEncoder(table)).scores
    theirs = _mteb_scores(ParitySTS(), table)
    keys = [
        f"{sim}_{corr}" for sim in ("cosine", "manhattan", "euclidean") for corr in ("pearson", "spearman")
    ]
    _assert_same(ours, theirs, keys)
    # MTEB's model-similarity scores use torch's pairwise cosine: equal up to float32 rounding
    _assert_same(ours, theirs, ["pearson", "spearman"], tol=1e-6)
    assert theirs["main_score"] == ours["cosine_spearman"]


# --------------------------------------------------------------------------- pair classification


def _pair_fixture(seed: int = 2, n: int = 120):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    table, s1, s2 = {}, [], []
    for i in range(n):
        a = rng.normal(size=DIM)
        b = a + rng.normal(scale=0.9 if labels[i] else 1.6, size=DIM)
        s1.append(f"left {i}")
        s2.append(f"right {i}")
        table[s1[-1]], table[s2[-1]] = a, b
    return s1, s2, labels, table


def test_pair_classification_task_equals_mteb():
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.mocks.mock_tasks.pair_classification import MockPairClassificationTask

    s1, s2, labels, table = _pair_fixture()

    class ParityPairs(AbsTaskPairClassification):
        metadata = _mock_metadata(MockPairClassificationTask, "ParityPairs")

        def load_data(self, num_proc=None, **kwargs):
            frame = {"sentence1": s1, "sentence2": s2, "labels": labels.tolist()}
            self.dataset = DatasetDict({"test": Dataset.from_dict(frame)})
            self.data_loaded = True

    data = TaskData(
        "parity", TaskType.pair_classification, "test", PairClassificationExamples(s1, s2, labels)
    )
    ours = build_task(data, _cfg()).evaluate(TableEncoder(table)).scores
    theirs = _mteb_scores(ParityPairs(), table)
    metrics = ("accuracy", "f1", "precision", "recall", "ap")
    _assert_same(
        ours, theirs, [f"{sim}_{m}" for sim in ("cosine", "manhattan", "euclidean", "dot") for m in metrics]
    )
    # MTEB's max_* also ranges over its torch "similarity" scores (cosine up to float32 rounding)
    _assert_same(ours, theirs, [f"max_{m}" for m in metrics], tol=1e-6)


def test_pair_threshold_search_equals_mteb_with_ties():
    """The module's threshold search (thresholds included) against MTEB's own methods."""
    from mteb.abstasks.pair_classification import AbsTaskPairClassification

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=300)
    scores = np.round(rng.normal(loc=labels * 0.7, size=300), 1)  # many ties
    metric = load_metric("pair_classification")
    reference = AbsTaskPairClassification.__new__(AbsTaskPairClassification)  # methods only, no dataset
    for high_is_similar in (True, False):
        ours = metric.compute(
            predictions=scores.tolist(), references=labels.tolist(), high_score_more_similar=high_is_similar
        )
        acc, acc_threshold = reference._find_best_acc_and_threshold(scores.tolist(), labels, high_is_similar)
        f1, precision, recall, f1_threshold = reference._find_best_f1_and_threshold(
            scores.tolist(), labels, high_is_similar
        )
        theirs = reference._compute_metrics_values(scores.tolist(), labels, high_is_similar)
        assert (ours["accuracy"], ours["accuracy_threshold"]) == (acc, acc_threshold)
        assert (ours["f1"], ours["precision"], ours["recall"], ours["f1_threshold"]) == (
            f1,
            precision,
            recall,
            f1_threshold,
        )
        assert ours["ap"] == theirs["ap"]


# --------------------------------------------------------------------------- classification


def _classification_fixture(n_classes: int, seed: int = 4):
    rng = np.random.default_rng(seed)
    centroids = rng.normal(scale=0.4, size=(n_classes, DIM))
    table, splits = {}, {}
    for split, size in (("train", 30 * n_classes), ("test", 15 * n_classes)):
        labels = rng.integers(0, n_classes, size=size)
        texts = [f"{split} text {i}" for i in range(size)]
        for text, label in zip(texts, labels, strict=True):
            table[text] = centroids[label] + rng.normal(size=DIM)
        splits[split] = (texts, labels)
    return splits, table


@pytest.mark.parametrize("n_classes", [2, 5])
def test_classification_task_equals_mteb(n_classes):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.mocks.mock_tasks.classification import MockClassificationTask

    splits, table = _classification_fixture(n_classes)

    class ParityClassification(AbsTaskClassification):
        metadata = _mock_metadata(MockClassificationTask, "ParityClassification")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict(
                {
                    split: Dataset.from_dict({"text": texts, "label": labels.tolist()})
                    for split, (texts, labels) in splits.items()
                }
            )
            self.data_loaded = True

    (train_texts, train_labels), (test_texts, test_labels) = splits["train"], splits["test"]
    examples = ClassificationExamples(
        train_texts, [str(x) for x in train_labels], test_texts, [str(x) for x in test_labels]
    )
    data = TaskData("parity", TaskType.classification, "test", examples)
    ours = build_task(data, _cfg()).evaluate(TableEncoder(table)).scores
    theirs = _mteb_scores(ParityClassification(), table)
    keys = ["accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall", "recall_weighted"]
    if n_classes == 2:
        keys += ["ap", "ap_weighted"]
    else:
        assert "ap" not in ours and math.isnan(theirs["ap"])
    _assert_same(ours, theirs, keys)
    assert 0.5 < ours["accuracy"] < 1.0  # a real signal, not a degenerate case


def test_undersampling_equals_mteb():
    from datasets import Dataset
    from mteb.abstasks.classification import AbsTaskClassification

    labels = np.random.default_rng(5).integers(0, 7, size=200).tolist()
    reference = AbsTaskClassification.__new__(AbsTaskClassification)
    reference.seed, reference.samples_per_label, reference.label_column_name = 42, 8, "label"
    dataset = Dataset.from_dict({"label": labels})
    idxs, theirs = None, []
    for i in range(10):
        _, idxs, selected = reference._undersample_data(dataset, i, idxs)
        theirs.append(selected)
    assert experiment_samples(labels, 8, 42, 10) == theirs


# --------------------------------------------------------------------------- clustering


def test_clustering_task_equals_mteb():
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy
    from mteb.mocks.mock_tasks.clustering import MockClusteringTask

    rng = np.random.default_rng(6)
    centroids = rng.normal(scale=0.8, size=(5, DIM))
    labels = rng.integers(0, 5, size=150)
    texts = [f"item {i}" for i in range(150)]
    table = {t: centroids[y] + rng.normal(size=DIM) for t, y in zip(texts, labels, strict=True)}

    class ParityClustering(AbsTaskClusteringLegacy):
        metadata = _mock_metadata(MockClusteringTask, "ParityClustering")

        def load_data(self, num_proc=None, **kwargs):
            frame = {"sentences": [texts], "labels": [labels.tolist()]}
            self.dataset = DatasetDict({"test": Dataset.from_dict(frame)})
            self.data_loaded = True

    data = TaskData(
        "parity", TaskType.clustering, "test", ClusteringExamples(texts, [str(y) for y in labels])
    )
    result = build_task(data, _cfg()).evaluate(TableEncoder(table))
    theirs = _mteb_scores(ParityClustering(), table)
    assert result.scores["v_measure"] == pytest.approx(theirs["v_measure"], abs=EXACT, rel=0)
    assert 0.2 < result.scores["v_measure"] < 1.0  # neither trivial nor degenerate
    # the other scores, against MTEB's definitions on our cluster assignment
    clusters = result.per_item["cluster"].tolist()
    full = ParityClustering()._compute_metrics(labels.tolist(), clusters)
    _assert_same(result.scores, full, ["v_measure", "nmi", "ari", "cluster_accuracy"])
