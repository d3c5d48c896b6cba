"""`embsel compare` and `embsel rerun`, in-process, against real sqlite stores and real (tiny) runs."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from embsel_mlflow.data import demo_data_dir
from embsel_mlflow.entrypoints import compare, evaluate, rerun
from tests.test_sweeps import QUIET, _absolute_store, _runs, _split, _tiny, restore_logging  # noqa: F401

DATASETS = ["demo_sts", "demo_pair_classification", "demo_classification"]


@pytest.fixture
def sweep_parent(tmp_path: Path, tiny_bert_dir: Path, restore_logging: None) -> str:  # noqa: F811
    """A 3-job sweep in ./mlflow.db; its parent run id."""
    code = evaluate.main(["-m", f"data={','.join(DATASETS)}", *_tiny(tiny_bert_dir), *QUIET])
    assert code == 0
    (parent,), _ = _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    return parent.info.run_id


def test_compare_prints_one_row_per_run_with_the_chosen_columns_sorted(
    sweep_parent: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    args = ["--parent", sweep_parent, "--params", "data.name", "--tags", "embsel.task", "--format", "csv"]
    assert compare.main(args) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    header = ["run_id", "run_name", "status", "main_score", "data.name", "embsel.task"]
    assert [list(row) for row in rows[:1]] == [header]
    assert sorted(row["data.name"] for row in rows) == sorted(DATASETS)
    scores = [float(row["main_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)  # by the first metric, best first
    children = {c.info.run_id: c for c in _split(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}"))[1]}
    for row in rows:
        child = children[row["run_id"]]
        assert float(row["main_score"]) == child.data.metrics["main_score"]
        assert row["embsel.task"] == child.data.tags["embsel.task"]

    # markdown to a file, filtered with MLflow's syntax, sorted ascending by a param
    out = tmp_path / "table.md"
    filter_ = "tags.`embsel.task` != 'sts'"
    args = ["--parent", sweep_parent, "--filter", filter_, "--params", "data.name", "--sort", "data.name"]
    assert compare.main([*args, "--ascending", "--format", "markdown", "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "| run_id | run_name | status | main_score | data.name |"
    assert lines[1].startswith("|---")
    assert [line.split(" | ")[-1].rstrip(" |") for line in lines[2:]] == sorted(DATASETS[1:])

    # a whole experiment (only the parent has jobs_total, so it sorts first), and run ids
    capsys.readouterr()
    assert compare.main(["--experiment", "embsel", "--metrics", "jobs_total"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + 4 and sweep_parent in table[1]
    assert compare.main(["--runs", sweep_parent, next(iter(children))]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 2


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--experiment", "nope"], "no experiment named 'nope'"),
        (["--parent", "0123456789abcdef"], "0123456789abcdef"),
        (["--filter", "params.x ~ 1"], "(tracking store: sqlite:///"),
        (["--sort", "nope"], "--sort nope: not a column"),
        (["--format", "xml"], "invalid choice: 'xml'"),  # a usage mistake: one line too, not argparse's two
    ],
)
def test_compare_bad_input_is_one_line(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri

    open_store(resolve_tracking_uri(None))  # an empty store: compare refuses one that does not exist
    assert compare.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


# -- rerun -----------------------------------------------------------------------------------


@pytest.fixture
def logged_run(tmp_path: Path, tiny_bert_dir: Path, restore_logging: None) -> tuple[str, Path]:  # noqa: F811
    """A finished STS run on a copy of the demo file in tmp_path; (run id, the data file)."""
    data = tmp_path / "data" / "sts" / "test.csv"
    data.parent.mkdir(parents=True)
    shutil.copy(demo_data_dir() / "sts" / "test.csv", data)
    assert evaluate.main([f"data.root={tmp_path / 'data'}", *_tiny(tiny_bert_dir), *QUIET]) == 0
    (run,) = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return run.info.run_id, data


def _replays(tmp_path: Path, run_id: str) -> list:
    runs = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return sorted((r for r in runs if r.data.tags.get("rerun_of") == run_id), key=lambda r: r.info.start_time)


def test_rerun_reproduces_reports_overrides_and_catches_a_changed_data_byte(
    logged_run: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_id, data = logged_run
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    capsys.readouterr()
    assert rerun.main([run_id]) == 0
    out = capsys.readouterr().out
    assert (
        "data digests: same" in out and "resolved config: same" in out and out.rstrip().endswith("reproduced")
    )
    (replay,) = _replays(tmp_path, run_id)
    original = client.get_run(run_id)
    assert replay.data.metrics["test/cosine_spearman"] == original.data.metrics["test/cosine_spearman"]
    assert replay.data.params["evaluation.seed"] == original.data.params["evaluation.seed"]
    assert replay.data.tags["embsel.rerun.reproduced"] == "true"
    assert (Path(client.download_artifacts(replay.info.run_id, "rerun")) / "diff.json").is_file()

    # with an override: the config change is reported; the batch size does not move the scores
    assert rerun.main([run_id, "model.batch_size=3"]) == 0
    out = capsys.readouterr().out
    assert "resolved config: 1 changed" in out and "model.batch_size: 32 -> 3" in out

    # an override the step does not know: the step's one error line, and no second one from rerun
    capsys.readouterr()
    assert rerun.main([run_id, "model.nope=1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope" in errors[0], errors

    # one byte of the data file changed: exit 1, naming the changed digest
    raw = bytearray(data.read_bytes())
    raw[raw.index(b"A")] = ord("E")
    data.write_bytes(bytes(raw))
    assert rerun.main([run_id]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data digest of demo_sts/test changed" in errors[0]
    assert _replays(tmp_path, run_id)[-1].data.tags["embsel.rerun.reproduced"] == "false"


def test_rerun_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = {"embsel.sweep": "parent", "embsel.entry_point": "evaluate"}
    sweep_parent = client.create_run(client.create_experiment("x"), tags=tags).info.run_id
    assert rerun.main(["0123456789abcdef"]) == 2
    assert rerun.main([sweep_parent]) == 2
    assert rerun.main([sweep_parent, "--tolerance", "tiny"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-3].startswith("error: no run 0123456789abcdef")
    assert errors[-2].startswith("error: ") and "sweep parent" in errors[-2]
    assert errors[-1].startswith("error: argument --tolerance: invalid float value: 'tiny'; usage: ")


def _errors(capsys: pytest.CaptureFixture) -> list[str]:
    """The ``error:`` lines on stderr (MLflow logs its first-use database setup there too)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_rerun_of_a_deleted_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("x")
    run_id = client.create_run(experiment, tags={"embsel.entry_point": "evaluate"}).info.run_id
    client.set_terminated(run_id, "FINISHED")
    client.delete_run(run_id)
    assert rerun.main([run_id]) == 2
    (error,) = _errors(capsys)
    assert error.startswith(f"error: run {run_id} is deleted; restore it")
    client.restore_run(run_id)
    client.delete_experiment(experiment)
    assert rerun.main([run_id]) == 2
    (error,) = _errors(capsys)
    assert error.startswith(f"error: experiment 'x' of run {run_id} is deleted; restore it")
    assert len(client.search_runs([experiment], run_view_type=ViewType.ALL)) == 1  # nothing was replayed


def test_compare_output_into_a_missing_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_run(client.create_experiment("x"))
    target = tmp_path / "no" / "such" / "table.csv"
    assert compare.main(["--experiment", "x", "--output", str(target)]) == 2
    (error,) = _errors(capsys)
    assert error.startswith(f"error: cannot write --output {target} (No such file or directory)")
    assert not target.parent.exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_rerun_of_an_stsb_run_reproduces_0_82032_and_catches_a_changed_byte(
    shared_data_dir: Path,
    tmp_path: Path,
    restore_logging: None,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    root = tmp_path / "data"
    shutil.copytree(shared_data_dir / "stsb", root / "stsb")  # never touch the shared copy
    assert evaluate.main(["data=stsb", f"data.root={root}", "evaluation.show_progress=false"]) == 0
    (run,) = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert round(run.data.metrics["test/cosine_spearman"], 5) == 0.82032
    assert rerun.main([run.info.run_id, "--tolerance", "0"]) == 0
    (replay,) = _replays(tmp_path, run.info.run_id)
    assert replay.data.metrics["test/cosine_spearman"] == run.data.metrics["test/cosine_spearman"]

    test_file = root / "stsb" / "sts-test.csv"
    raw = bytearray(test_file.read_bytes())
    raw[raw.index(b"A man")] = ord("a")
    test_file.write_bytes(bytes(raw))
    capsys.readouterr()
    assert rerun.main([run.info.run_id]) == 1
    assert "data digest of stsb/test changed" in capsys.readouterr().err
