"""Third-party files as they come, by data config alone: unscored rows skipped and counted, qrels
without a score column, passages known by their row number, splits added on the command line, and
a dataset's own evaluation settings, applied alike by evaluate and select (real Hydra, real MLflow
sqlite store, a tiny model)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.config import DataConfig, EvaluationConfig, TableConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import build_task, load_task_data
from tests.cli_harness import assert_one_line_error, invoke

TINY_ST = ["model=minilm", "model.name=tiny"]


def _evaluated(tmp_path: Path, tiny_st_dir: Path, data: list[str]):
    """``embsel evaluate`` of the tiny model on ``data`` (overrides): its one FINISHED run."""
    result = invoke("evaluate", *TINY_ST, f"model.name_or_path={tiny_st_dir}", *data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED"
    return run


def _runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _unscored_sts(folder: Path) -> Path:
    """The demo STS pairs as STS15/16 ship theirs: no header, and 3 of the gold scores empty."""
    from embsel_mlflow.data import demo_data_dir

    frame = pd.read_csv(demo_data_dir() / "sts" / "test.csv").head(12).astype({"score": object})
    frame.loc[[2, 5, 9], "score"] = ""
    path = folder / "sts15.tsv"
    frame.to_csv(path, sep="\t", header=False, index=False)
    return path


def _sts_config(folder: Path, on_missing: str) -> DataConfig:
    table = TableConfig(path="sts15.tsv", format="tsv", header=False, column_names=["s1", "s2", "score"])
    return DataConfig(
        name="sts15", task="sts", root=str(folder), splits={"test": table}, on_missing=on_missing
    )


def test_unscored_rows_are_one_line_naming_the_option_or_skipped_and_counted(tmp_path: Path) -> None:
    _unscored_sts(tmp_path)
    with pytest.raises(
        DataError,
        match=r"sts15\.tsv: 3 row\(s\) have no 'score' value, first at row 3.*data\.on_missing=skip",
    ):
        load_task_data(_sts_config(tmp_path, "error"))
    data = load_task_data(_sts_config(tmp_path, "skip"))
    assert len(data.examples.s1) == 9 and "" not in data.examples.s1
    assert data.examples.scores.shape == (9,) and not pd.isna(data.examples.scores).any()
    (warning,) = data.warnings
    assert (
        warning.code == "missing_labels_skipped"
        and warning.count == 3
        and "first at row 3" in warning.message
    )
    with pytest.raises(ConfigError, match=r"data\.on_missing must be one of error, skip"):
        DataConfig(name="x", task="sts", on_missing="drop")


def test_a_bad_value_after_skipped_rows_names_its_row_in_the_file(tmp_path: Path) -> None:
    _unscored_sts(tmp_path)
    text = (tmp_path / "sts15.tsv").read_text().splitlines()
    text[10] = text[10].rsplit("\t", 1)[0] + "\tfive"  # row 11 of the file, row 8 once three are left out
    (tmp_path / "sts15.tsv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"row 11 has 'five'"):
        load_task_data(_sts_config(tmp_path, "skip"))


def test_evaluate_skips_unscored_rows_and_logs_how_many(tmp_path: Path, tiny_st_dir: Path) -> None:
    _unscored_sts(tmp_path)
    data = [
        "data=demo_sts", "data.name=sts15", f"data.root={tmp_path}", "data.splits.test.path=sts15.tsv",
        "+data.splits.test.format=tsv", "+data.splits.test.header=false",
        "+data.splits.test.column_names=[sentence1,sentence2,score]", "data.on_missing=skip",
    ]  # fmt: skip
    run = _evaluated(tmp_path, tiny_st_dir, data)
    assert run.data.params["data.on_missing"] == "skip"
    assert run.data.tags["embsel.data_warnings"] == "missing_labels_skipped=3"
    # the default refuses them: one line naming the option, a FAILED run
    failed = invoke("evaluate", *TINY_ST, f"model.name_or_path={tiny_st_dir}", *data[:-1], cwd=tmp_path)
    assert_one_line_error(failed, "data.on_missing=skip")
    assert {r.info.status for r in _runs(tmp_path)} == {"FINISHED", "FAILED"}


def _row_numbered_retrieval(folder: Path) -> dict[str, dict[str, int]]:
    """The demo retrieval set as MS MARCO-like files: passages known by their row (from 0, no id
    column), queries with a `qid`, qrels `qid pid` with no score column (every pair relevant)."""
    from embsel_mlflow.data import demo_data_dir

    demo = demo_data_dir() / "retrieval"
    corpus = pd.read_json(demo / "corpus.jsonl", lines=True, dtype=False)
    corpus[["text"]].to_csv(folder / "collection.tsv", sep="\t", index=False)
    queries = pd.read_json(demo / "queries.jsonl", lines=True, dtype=False)
    queries.rename(columns={"_id": "qid"})[["qid", "text"]].to_csv(
        folder / "queries.tsv", sep="\t", index=False
    )
    row = {doc: str(i) for i, doc in enumerate(corpus["_id"])}
    qrels = pd.read_csv(demo / "qrels" / "test.tsv", sep="\t", dtype=str)
    pairs = pd.DataFrame({"qid": qrels["query-id"], "pid": qrels["corpus-id"].map(row)})
    pairs.to_csv(folder / "qrels.tsv", sep="\t", index=False)
    expected: dict[str, dict[str, int]] = {}
    for qid, pid in zip(pairs["qid"], pairs["pid"], strict=True):
        expected.setdefault(qid, {})[pid] = 1
    return expected


def test_a_retrieval_config_reads_score_less_qrels_and_row_numbered_passages(tmp_path: Path) -> None:
    expected = _row_numbered_retrieval(tmp_path)
    cfg = DataConfig(
        name="rows",
        task="retrieval",
        root=str(tmp_path),
        corpus=TableConfig(path="collection.tsv", row_ids=0),
        queries=TableConfig(path="queries.tsv", columns={"id": "qid"}),
        splits={"test": TableConfig(path="qrels.tsv", columns={"query_id": "qid", "doc_id": "pid"})},
    )
    data = load_task_data(cfg)
    assert data.examples.qrels == expected and set(data.examples.corpus) == {str(i) for i in range(40)}
    with pytest.raises(ConfigError, match=r"row_ids or columns\.id, not both"):
        load_task_data(
            DataConfig(
                **{
                    **cfg.__dict__,
                    "corpus": TableConfig(path="collection.tsv", row_ids=0, columns={"id": "text"}),
                }
            )
        )


def test_evaluate_scores_score_less_qrels_from_a_data_config(tmp_path: Path, tiny_st_dir: Path) -> None:
    _row_numbered_retrieval(tmp_path)
    data = [
        "data=demo_retrieval", "data.name=rows", f"data.root={tmp_path}",
        "data.corpus.path=collection.tsv", "~data.corpus.columns.id", "+data.corpus.row_ids=0",
        "data.queries.path=queries.tsv", "data.queries.columns.id=qid",
        "data.splits.test.path=qrels.tsv", "data.splits.test.columns={query_id: qid, doc_id: pid}",
    ]  # fmt: skip
    run = _evaluated(tmp_path, tiny_st_dir, data)
    assert 0.0 < run.data.metrics["test/ndcg_at_10"] <= 1.0
    assert run.data.tags["main_score_name"] == "ndcg_at_10"


def test_a_split_added_on_the_command_line_composes_as_a_table(tmp_path: Path, tiny_st_dir: Path) -> None:
    """`+data.splits.dev={path: ...}` (OmegaConf refuses a dict on a Dict[str, TableConfig] key)."""
    from omegaconf import OmegaConf

    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import config_error_message

    cfg = compose_config(
        "evaluate", ["data=demo_sts", "+data.splits.dev={path: sts/test.csv}", "+data.splits.val.path=v.csv"]
    )
    job = OmegaConf.to_object(cfg)
    assert isinstance(job.data.splits["dev"], TableConfig) and job.data.splits["dev"].path == "sts/test.csv"
    assert job.data.splits["val"].path == "v.csv" and job.data.splits["test"].columns == {
        "s1": "sentence1",
        "s2": "sentence2",
    }
    bad = compose_config("evaluate", ["data=demo_sts", "+data.splits.dev={pathh: x.csv}"])
    with pytest.raises(Exception) as caught:
        OmegaConf.to_object(bad)
    assert "data.splits.dev: Key 'pathh' not in 'TableConfig'" in config_error_message(
        caught.value, "evaluate"
    )
    # and scored: the new split evaluated end to end
    from embsel_mlflow.data import demo_data_dir

    pd.read_csv(demo_data_dir() / "sts" / "test.csv").tail(12).to_csv(tmp_path / "dev.csv", index=False)
    result = invoke(
        "evaluate", *TINY_ST, f"model.name_or_path={tiny_st_dir}", "data=demo_sts", f"data.root={tmp_path}",
        "+data.splits.dev={path: dev.csv, columns: {s1: sentence1, s2: sentence2}}", "data.eval_split=dev",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tiny on demo_sts [dev]" in result.stdout


def test_a_datasets_evaluation_settings_apply_where_it_is_scored(tmp_path: Path) -> None:
    from embsel_mlflow.data import demo_data_dir

    table = {
        "test": TableConfig(path="classification/test.csv"),
        "train": TableConfig(path="classification/train.csv"),
    }
    cfg = DataConfig(
        name="demo",
        task="classification",
        root=str(demo_data_dir()),
        splits=table,
        evaluation={"samples_per_label": 32},
    )
    task = build_task(load_task_data(cfg), EvaluationConfig(samples_per_label=8, n_experiments=3))
    assert task.cfg.samples_per_label == 32 and task.cfg.n_experiments == 3
    with pytest.raises(
        ConfigError, match=r"data\.evaluation of dataset 'demo': Key 'samples' not in 'EvaluationConfig'"
    ):
        DataConfig(name="demo", task="classification", evaluation={"samples": 32})


def test_32_samples_per_label_give_the_same_accuracy_in_evaluate_and_select(
    tmp_path: Path, tiny_st_dir: Path
) -> None:
    model = [f"model.name_or_path={tiny_st_dir}", "model.name=tiny"]
    settings = ["evaluation.n_experiments=3"]
    evaluated = invoke(
        "evaluate", "model=minilm", *model, "data=demo_classification",
        "+data.evaluation.samples_per_label=32", *settings, cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (run,) = _runs(tmp_path)
    assert run.data.params["data.evaluation.samples_per_label"] == "32"
    candidate = [f"candidates.minilm.{m.removeprefix('model.')}" for m in model]
    selected = invoke(
        "select", "candidates=[minilm]", *candidate, "datasets=[demo_classification]",
        "+datasets.demo_classification.evaluation.samples_per_label=32", *settings, cwd=tmp_path,
    )  # fmt: skip
    assert selected.returncode == 0, selected.stderr[-2000:]
    children = [
        r for r in _runs(tmp_path) if r.info.run_id != run.info.run_id and "test/accuracy" in r.data.metrics
    ]
    assert [c.data.metrics["test/accuracy"] for c in children] == [run.data.metrics["test/accuracy"]]
