"""The bar on real data: the offline MiniLM on the raw files in ../shared/data.

Runs the library exactly as `embsel evaluate model=minilm data=<name>` composes it. References
are MTEB's published scores (../shared/README.md) and, for SciFact, sentence-transformers' own
InformationRetrievalEvaluator fed from the raw files with the standard library.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from embsel_mlflow.config.store import compose_config
from embsel_mlflow.families import build_task, load_task_data
from embsel_mlflow.models import load_encoder

pytestmark = pytest.mark.shared_data


def _job(shared_data_dir: Path, data: str):
    cfg = compose_config(
        "evaluate",
        [
            "model=minilm",
            f"data={data}",
            f"data.root={shared_data_dir}",
            "evaluation.show_progress=false",
        ],
    )
    return OmegaConf.to_object(cfg)


@pytest.fixture(scope="module")
def minilm(shared_data_dir: Path):
    return load_encoder(_job(shared_data_dir, "stsb").model)


def _evaluate(shared_data_dir: Path, data: str, encoder):
    job = _job(shared_data_dir, data)
    return build_task(load_task_data(job.data), job.evaluation).evaluate(encoder)


def test_stsb_cosine_spearman_equals_mteb_published(shared_data_dir: Path, minilm) -> None:
    result = _evaluate(shared_data_dir, "stsb", minilm)
    assert result.main_score_name == "cosine_spearman"
    assert result.main_score == pytest.approx(0.82032, abs=0.002)
    assert result.scores["cosine_pearson"] == pytest.approx(0.82741, abs=0.002)


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_banking77_accuracy_with_mteb_protocol_equals_published(shared_data_dir: Path, minilm) -> None:
    result = _evaluate(shared_data_dir, "banking77", minilm)
    assert result.main_score_name == "accuracy"
    assert result.main_score == pytest.approx(0.80042, abs=0.01)
    assert result.scores["f1"] == pytest.approx(0.79379, abs=0.01)


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_mrpc_cosine_ap_is_reported(shared_data_dir: Path, minilm) -> None:
    result = _evaluate(shared_data_dir, "mrpc", minilm)
    assert result.main_score_name == "cosine_ap"
    # 67.5% of MRPC test pairs are positive: a useful model is well above that base rate.
    assert 0.7 < result.main_score < 1.0
    assert len(result.per_item) == 1725


def _scifact_from_raw_files(root: Path) -> tuple[dict, dict, dict]:
    corpus = {}
    with open(root / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[doc["_id"]] = (doc["title"] + " " + doc["text"]).strip()
    with open(root / "queries.jsonl", encoding="utf-8") as handle:
        queries = {q["_id"]: q["text"] for q in map(json.loads, handle)}
    relevant: dict[str, set[str]] = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    return corpus, {q: queries[q] for q in relevant}, relevant


@pytest.mark.slow
def test_scifact_ndcg_at_10_equals_sentence_transformers_ir_evaluator(shared_data_dir: Path, minilm) -> None:
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    ours = _evaluate(shared_data_dir, "scifact", minilm)
    corpus, queries, relevant = _scifact_from_raw_files(shared_data_dir / "scifact")
    reference = InformationRetrievalEvaluator(
        queries, corpus, relevant, name="scifact", write_csv=False, batch_size=32, show_progress_bar=False
    )(minilm.model)
    assert ours.scores["ndcg_at_10"] == pytest.approx(reference["scifact_cosine_ndcg@10"], abs=0.002)
    assert ours.scores["mrr_at_10"] == pytest.approx(reference["scifact_cosine_mrr@10"], abs=0.002)
