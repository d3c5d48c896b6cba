"""`embsel profile` end to end (real Hydra, real MLflow sqlite store, tiny tokenizer), and the
modality guard of `embsel evaluate`: a text model on image paths fails its run unless allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from tests.cli_harness import assert_one_line_error, invoke


def _store(cwd: Path) -> str:
    return f"sqlite:///{cwd / 'mlflow.db'}"


def _runs(cwd: Path) -> list:
    client = MlflowClient(_store(cwd))
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_profile_a_raw_table_logs_metrics_report_inputs_and_tags(tmp_path: Path, tiny_bert_dir: Path) -> None:
    texts = [f"short sentence number {i} about topic {i % 7}" for i in range(60)] + [""] * 6
    pd.DataFrame({"body": texts, "kind": ["a", "b"] * 33}).to_csv(tmp_path / "my.csv", index=False)
    result = invoke(
        "profile",
        "table.path=my.csv",
        "+table.columns.text=body",
        "candidates=[transformers_mean,bm25]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "candidates.transformers_mean.max_seq_length=8",
        "profile.show_progress=false",
        "+tracking.tags.api_token=x",
        f"tracking.uri={_store(tmp_path)}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED"
    # a setting named like a secret keeps its value; a secret-named tag is still masked
    assert run.data.params["profile.unknown_token_rate_warn"] == "0.01"
    assert run.data.tags["api_token"] == "***"
    metrics = run.data.metrics
    assert metrics["profile/table/text/empty_rate"] == 6 / 66 and metrics["profile/table/rows"] == 66
    assert metrics["profile/table/text/truncation_rate/transformers_mean"] == 1.0
    assert "profile/table/text/words_p95/bm25" in metrics
    assert "profile/table/text/null_rate" not in metrics  # a detail: in profile.json
    tags = run.data.tags
    warned = {key.rsplit(".", 1)[1] for key in tags if key.startswith("embsel.profile.finding.warn.")}
    # texts differ by a number only; the tiny tokenizer knows few words
    assert warned == {"empty_texts", "near_duplicates", "truncation", "unknown_tokens"}
    assert tags["embsel.profile.warn"] == "4" and tags["embsel.profile.error"] == "0"
    assert "findings: 0 error, 4 warn, 2 info" in result.stdout
    assert "9.1% of `table/text` is empty or missing" in tags["embsel.profile.finding.warn.empty_texts"]
    client = MlflowClient(_store(tmp_path))
    profile = json.loads(
        Path(client.download_artifacts(run.info.run_id, "profile.json", str(tmp_path))).read_text()
    )
    assert profile["finding_counts"] == {"info": 2, "warn": 4, "error": 0}
    (text,) = [c for c in profile["columns"] if c["column"] == "text"]
    assert text["text"]["null_rate"] == 0.0 and text["tokens"]["transformers_mean"]["truncation_rate"] == 1.0
    report = Path(client.download_artifacts(run.info.run_id, "profile.html", str(tmp_path))).read_text()
    assert report.count("data:image/png;base64,") >= 2 and "<script" not in report
    (dataset_input,) = run.inputs.dataset_inputs
    assert (
        dataset_input.dataset.name == "my/table"
        and tags["embsel.profile.digest.table"] == dataset_input.dataset.digest
    )


def test_profile_bad_input_is_one_line_and_a_failed_run(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("text\n")
    result = invoke(
        "profile",
        "table.path=empty.csv",
        "candidates=[]",
        f"tracking.uri={_store(tmp_path)}",
        cwd=tmp_path,
    )
    message = assert_one_line_error(result, "has no rows (an empty dataset)")
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["error"] == message


def _image_dataset(root: Path) -> list[str]:
    rows = [(f"photos/cat_{i:03d}.jpg", "cat" if i % 2 else "dog") for i in range(40)]
    for split, part in (("train", rows[:24]), ("test", rows[24:])):
        pd.DataFrame(part, columns=["text", "label"]).to_csv(root / f"{split}.csv", index=False)
    return [
        "data=demo_classification",
        f"data.root={root}",
        "evaluation.n_experiments=1",
        "evaluation.show_progress=false",
        f"tracking.uri={_store(root)}",
    ]


def test_evaluate_refuses_a_text_model_on_image_paths_unless_allowed(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    args = [
        *_image_dataset(tmp_path),
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "data.splits.train.path=train.csv",
        "data.splits.test.path=test.csv",
    ]
    message = assert_one_line_error(invoke("evaluate", *args, cwd=tmp_path), "holds image paths")
    assert "profile.allow_modality_mismatch=true" in message
    (failed,) = _runs(tmp_path)
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == message
    result = invoke("evaluate", *args, "profile.allow_modality_mismatch=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r.info.status for r in _runs(tmp_path)) == ["FAILED", "FINISHED"]


def test_select_fails_the_pair_on_image_paths(tmp_path: Path, tiny_bert_dir: Path) -> None:
    _image_dataset(tmp_path)
    args = [
        "candidates=[transformers_mean]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "datasets=[demo_classification]",
        f"datasets.demo_classification.root={tmp_path}",
        "datasets.demo_classification.splits.train.path=train.csv",
        "datasets.demo_classification.splits.test.path=test.csv",
        "evaluation.n_experiments=1",
        "evaluation.show_progress=false",
        "select.resamples=100",
        "select.efficiency.sample_size=8",
        "select.efficiency.latency_queries=2",
        f"tracking.uri={_store(tmp_path)}",
    ]
    message = assert_one_line_error(invoke("select", *args, cwd=tmp_path), "holds image paths")
    runs = {r.info.run_name: r for r in _runs(tmp_path)}
    child = runs["transformers_mean@demo_classification"]
    assert child.info.status == "FAILED" and "holds image paths" in child.data.tags["error"]
    assert all(r.info.status == "FAILED" for r in runs.values()) and "1 pair(s) failed" in message
