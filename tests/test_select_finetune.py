"""`embsel select select.finetune_top_k=K` on tiny models against a real sqlite store: the best
zero-shot candidate is fine-tuned in a child train run, and its logged model is ranked with the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from embsel_mlflow.config import DataConfig, TableConfig, TaskType, TrainConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.selection.finetune import tuned_name
from embsel_mlflow.training.checks import check_finetune
from tests.test_select import FAST, _runs, _select, _store, _tiny_candidates
from tests.test_select_errors import _parent_and_children

CANDIDATES = ("transformers_mean", "e5_base")
# A few training steps: the demo retrieval set has one split, so it trains on its test qrels (the
# test checks the plumbing, not generalisation).
TRAIN = [
    "datasets=[demo_retrieval]",
    "datasets.demo_retrieval.train_split=test",
    "train.batch_size=4",
    "train.learning_rate=0.005",
    "train.logging_steps=1",
    "train.system_metrics=false",
]


@pytest.fixture(scope="module")
def finetuned(tiny_bert_dir: Path, tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("select_finetune")
    args = [
        *_tiny_candidates(tiny_bert_dir, tiny_st_dir),
        *TRAIN,
        *FAST,
        "select.finetune_top_k=1",
        f"cache.dir={cwd / 'cache'}",  # a module fixture runs before the per-test EMBSEL_CACHE_DIR
    ]
    code = _select(args, cwd)
    parent, children = _parent_and_children(cwd)
    (tune,) = [c for c in children.values() if "embsel.finetune_of" in c.data.tags]
    pairs = {name: c for name, c in children.items() if c is not tune}
    return code, cwd, parent, tune, pairs


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_the_best_zero_shot_candidate_is_fine_tuned_in_a_child_train_run(finetuned) -> None:
    code, _, parent, tune, pairs = finetuned
    assert code == 0 and parent.info.status == "FINISHED"
    zero_shot = {name: parent.data.metrics[f"{name}/demo_retrieval"] for name in CANDIDATES}
    best = max(zero_shot, key=zero_shot.__getitem__)
    assert tune.data.tags["embsel.finetune_of"] == best
    assert tune.data.tags["embsel.entry_point"] == "train" and tune.info.status == "FINISHED"
    assert tune.data.tags["embsel.finetuned_candidate"] == f"{best}/finetuned"
    metrics = tune.data.metrics
    # the baseline is the zero-shot score: the same evaluator as the select child of that pair
    assert metrics["baseline/test/main_score"] == pytest.approx(zero_shot[best], abs=1e-6)
    delta = metrics["delta/test/main_score"]
    assert delta == pytest.approx(metrics["test/main_score"] - metrics["baseline/test/main_score"])
    assert metrics["delta/test/main_score_ci_low"] <= delta <= metrics["delta/test/main_score_ci_high"]
    assert "train/loss" in metrics and tune.data.params["train.batch_size"] == "4"
    # one child per zero-shot pair and one per pair of the tuned candidate, all finished
    expected = [*CANDIDATES, f"{best}/finetuned"]
    assert sorted(pairs) == sorted(f"{name}@demo_retrieval" for name in expected)
    assert all(p.info.status == "FINISHED" for p in pairs.values())


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_the_tuned_candidate_is_ranked_from_the_model_its_run_logged(finetuned) -> None:
    _, cwd, parent, tune, pairs = finetuned
    tuned = tune.data.tags["embsel.finetuned_candidate"]
    child = pairs[f"{tuned}@demo_retrieval"]
    assert child.data.tags["embsel.model_run_id"] == tune.info.run_id
    assert child.data.params["model.kind"] == "from_run"
    # loaded from runs:/<tune>/model, it scores what the in-memory tuned model scored in the train run
    assert child.data.metrics["main_score"] == pytest.approx(tune.data.metrics["test/main_score"], abs=1e-5)
    assert parent.data.metrics[f"{tuned}/demo_retrieval"] == pytest.approx(child.data.metrics["main_score"])
    # it costs what its base costs: the base's efficiency, not a second (noisy) timing
    base = pairs[f"{tune.data.tags['embsel.finetune_of']}@demo_retrieval"]
    for key in ("efficiency/texts_per_second", "efficiency/latency_p95_ms"):
        assert child.data.metrics[key] == base.data.metrics[key]
    assert child.data.tags["embsel.efficiency_measured_at"] == base.data.tags["embsel.efficiency_measured_at"]

    client = _store(cwd)
    board = pd.read_csv(client.download_artifacts(parent.info.run_id, "leaderboard.csv"))
    row = board.set_index("candidate").loc[tuned]
    assert row["demo_retrieval"] == pytest.approx(child.data.metrics["main_score"])
    assert row["demo_retrieval vs best"] in ("best", "tied", "worse")  # in the paired tests
    assert bool(row["registrable"]) and tune.info.run_id in row["notes"]
    assert len(board) == 3 and tuned in parent.data.tags["embsel.candidates"]
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "decision.json")).read_text())
    (record,) = decision["finetunes"]
    assert record["tuned"] == tuned and record["run_id"] == tune.info.run_id and record["error"] is None
    zero_shot = Path(client.download_artifacts(parent.info.run_id, "zero_shot/leaderboard.md")).read_text()
    assert tuned not in zero_shot and all(name in zero_shot for name in CANDIDATES)


def test_a_dataset_without_a_train_split_is_refused_before_anything_runs(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "candidates=[transformers_mean]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "datasets=[demo_sts]",
        "select.finetune_top_k=1",
        *FAST,
    ]
    assert _select(args, tmp_path) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert "dataset 'demo_sts' has no 'train' split" in line and "datasets.demo_sts.train_split" in line
    (parent,) = _runs(tmp_path)  # refused before any child run
    assert parent.info.status == "FAILED" and "'train' split" in parent.data.tags["error"]


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_a_failing_fine_tune_fails_its_child_and_the_selection_still_decides(
    tmp_path: Path, tiny_st_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "candidates=[e5_base]",
        f"candidates.e5_base.name_or_path={tiny_st_dir}",
        *TRAIN,
        "train.batch_size=1000",  # more than the training pairs: refused before any training step
        "select.finetune_top_k=3",  # more than there are candidates: all of them are trained
        *FAST,
    ]
    assert _select(args, tmp_path) == 2
    err = capsys.readouterr().err
    assert "select.finetune_top_k=3, but 1 candidate(s) can be fine-tuned: training all of them" in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "1 fine-tune(s) failed" in line and "fewer than one batch" in line
    parent, children = _parent_and_children(tmp_path)
    tune = children.pop("finetune e5_base@demo_retrieval")
    assert tune.info.status == "FAILED" and "fewer than one batch" in tune.data.tags["error"]
    assert parent.info.status == "FAILED" and parent.data.tags["embsel.winner"] == "e5_base"
    assert [c.info.status for c in children.values()] == ["FINISHED"]  # the zero-shot pair


def _data(task: TaskType, splits: tuple[str, ...] = ("train", "test")) -> dict[str, DataConfig]:
    tables = {split: TableConfig(path=f"{split}.csv") for split in splits}
    return {"mine": DataConfig(name="mine", task=task, splits=tables)}


@pytest.mark.parametrize(
    ("top_k", "datasets", "train", "expected"),
    [
        (-1, _data(TaskType.sts), TrainConfig(), "select.finetune_top_k must be >= 0"),
        (1, _data(TaskType.sts), TrainConfig(), "use train/loss=cosent"),  # MNRL on scored pairs
        (1, _data(TaskType.clustering), TrainConfig(), "has no training pairs"),
        (1, _data(TaskType.retrieval), TrainConfig(resume="abc"), "drop train.resume"),
        (1, _data(TaskType.retrieval), TrainConfig(log_model=False), "train.log_model=true"),
        (1, _data(TaskType.retrieval, ("test",)), TrainConfig(), "no 'train' split"),
    ],
)
def test_check_finetune_refuses_what_would_fail_every_fine_tune(top_k, datasets, train, expected) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_finetune(top_k, datasets, train)
    check_finetune(0, datasets, train)  # off: nothing to check


def test_tuned_names_say_the_dataset_only_when_there_are_several() -> None:
    assert tuned_name("minilm", "scifact", several_datasets=False) == "minilm/finetuned"
    assert tuned_name("minilm", "scifact", several_datasets=True) == "minilm/finetuned-scifact"
