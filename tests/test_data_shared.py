"""The real datasets in ../shared/data load through their conf/data yamls, read raw as published.

Expected counts and values come from each dataset's SOURCE.md; whole-split contents are compared
with the raw files parsed independently by the standard library (csv with QUOTE_NONE, json).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from embsel_mlflow.config import DataConfig, TaskType
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.families import load_task_data

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.shared_data


@pytest.fixture
def load(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Load conf/data/<name>.yaml for a split, with the shared data dir as its root."""
    monkeypatch.setenv("EMBSEL_SHARED_DATA", str(shared_data_dir))

    def _load(name: str, split: str | None = None, **overrides: object) -> TaskData:
        yaml = OmegaConf.load(REPO_ROOT / "conf" / "data" / f"{name}.yaml")
        merged = OmegaConf.merge(OmegaConf.structured(DataConfig), yaml, overrides)
        cfg = OmegaConf.to_object(merged)
        assert Path(cfg.root) == shared_data_dir
        return load_task_data(cfg, split=split)

    return _load


def _raw_tsv(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with open(path, newline="", encoding=encoding) as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize(("split", "rows"), [("test", 1379), ("train", 5749), ("dev", 1500)])
def test_stsb(load, shared_data_dir: Path, split: str, rows: int) -> None:
    data = load("stsb", split)
    assert data.task is TaskType.sts
    examples = data.examples
    assert len(examples.s1) == len(examples.s2) == len(examples.scores) == rows
    raw = _raw_tsv(shared_data_dir / "stsb" / f"sts-{split}.csv")
    assert examples.s1 == [r[5] for r in raw]
    assert examples.s2 == [r[6] for r in raw]
    np.testing.assert_array_equal(examples.scores, [float(r[4]) for r in raw])
    assert examples.scores.min() >= 0 and examples.scores.max() <= 5
    if split == "test":
        assert (examples.s1[0], examples.s2[0], examples.scores[0]) == (
            "A girl is styling her hair.",
            "A girl is brushing her hair.",
            2.5,
        )
        frame = data.tables[0].frame
        assert frame["id"].iloc[0] == "0024"
        assert Counter(frame["genre"]) == {"main-captions": 625, "main-forums": 254, "main-news": 500}


@pytest.mark.parametrize(("split", "pairs", "positives"), [("test", 1725, 1147), ("train", 4076, 2753)])
def test_mrpc(load, shared_data_dir: Path, split: str, pairs: int, positives: int) -> None:
    data = load("mrpc", split)
    examples = data.examples
    assert len(examples.s1) == len(examples.labels) == pairs
    assert int(examples.labels.sum()) == positives
    raw = _raw_tsv(shared_data_dir / "mrpc" / f"msr_paraphrase_{split}.txt", encoding="utf-8-sig")
    assert raw[0] == ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    assert examples.s1 == [r[3] for r in raw[1:]]
    assert examples.s2 == [r[4] for r in raw[1:]]
    if split == "train":
        assert examples.s1[0].startswith('Amrozi accused his brother, whom he called "the witness",')
        assert examples.labels[:3].tolist() == [1, 0, 1]
        assert data.tables[0].frame["#1 ID"].iloc[0] == "702876"


def test_banking77(load, shared_data_dir: Path) -> None:
    examples = load("banking77").examples
    assert len(examples.train_texts) == len(examples.train_labels) == 10003
    assert len(examples.test_texts) == len(examples.test_labels) == 3080
    categories = json.loads((shared_data_dir / "banking77" / "categories.json").read_text())
    assert len(categories) == 77
    assert set(examples.train_labels) == set(examples.test_labels) == set(categories)
    assert set(Counter(examples.test_labels).values()) == {40}
    assert examples.train_texts[:2] == [
        "I am still waiting on my card?",
        "What can I do if my card still hasn't arrived after 2 weeks?",
    ]
    assert examples.test_texts[1] == "I still have not received my new card, I ordered over a week ago."
    assert examples.train_labels[0] == "card_arrival"


@pytest.mark.parametrize(("split", "queries", "qrels"), [("test", 300, 339), ("train", 809, 919)])
def test_scifact(load, shared_data_dir: Path, split: str, queries: int, qrels: int) -> None:
    data = load("scifact", split)
    examples = data.examples
    assert len(examples.corpus) == 5183
    assert len(examples.queries) == queries
    assert sum(len(docs) for docs in examples.qrels.values()) == qrels
    assert {score for docs in examples.qrels.values() for score in docs.values()} == {1}
    assert [t.role for t in data.tables] == ["corpus", "queries", f"qrels/{split}"]
    assert len(data.tables[1].frame) == 1109  # queries.jsonl holds both splits

    title = (
        "Microstructural development of human newborn cerebral white matter assessed in vivo by "
        "diffusion tensor magnetic resonance imaging."
    )
    assert examples.corpus["4983"].startswith(
        f"{title} Alterations of the architecture of cerebral white matter"
    )
    with open(shared_data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        raw = {d["_id"]: d for d in map(json.loads, f)}
    assert examples.corpus == {i: f"{d['title']} {d['text']}".strip() for i, d in raw.items()}

    if split == "test":
        assert examples.qrels["1"] == {"31715818": 1}
        assert examples.qrels["3"] == {"14717500": 1}
        assert "0" not in examples.queries  # a train query
    else:
        assert examples.queries["0"] == "0-dimensional biomaterials lack inductive properties."
        assert examples.queries["2"] == "1 in 5 million in UK have abnormal PrP positivity."
        assert examples.qrels["2"] == {"13734012": 1}


def test_scifact_limit_keeps_first_queries(load) -> None:
    full = load("scifact").examples
    limited = load("scifact", limit=5).examples
    assert list(limited.qrels) == list(full.qrels)[:5]
    assert limited.queries == {q: full.queries[q] for q in list(full.qrels)[:5]}
