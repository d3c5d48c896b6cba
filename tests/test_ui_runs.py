"""Runs that read well in the MLflow UI (issue 10): names, params, model entity, failures, provenance.

Real Hydra composition, real sqlite stores in tmp dirs, real models; `embsel evaluate` runs
in-process where the process boundary does not matter, in a subprocess where it does (warnings).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints.evaluate import main as evaluate_main
from embsel_mlflow.evaluation.base import TaskResult
from embsel_mlflow.tracking import experiment_ui
from embsel_mlflow.tracking.config_logging import readable_config
from embsel_mlflow.tracking.experiment_ui import get_or_create_experiment
from embsel_mlflow.tracking.plots import MAX_MATRIX_CLASSES, result_figure
from embsel_mlflow.tracking.run import _source_tags
from embsel_mlflow.tracking.run_naming import is_generated_name, model_display_name


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _other_repo(path: Path) -> str:
    """A git repository that is not embsel's, with one commit; returns its HEAD."""
    _git(path, "init", "-q")
    (path / "notes.txt").write_text("someone else's project\n")
    _git(path, "add", "notes.txt")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "other")
    return _git(path, "rev-parse", "HEAD")


def _exit_code(args: list[str]) -> int:
    """``embsel evaluate`` in-process; the exit code it returns or raises."""
    try:
        return evaluate_main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


def _only_run(uri: str):
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments)
    return client, run


@pytest.fixture(scope="module")
def stsb_run(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path):
    """One plain STS-B run of MiniLM (first 64 pairs), started inside another git repository.

    Returns (client, run, HEAD of the other repository, store uri).
    """
    root = tmp_path_factory.mktemp("stsb_run")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    other_head = _other_repo(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(var, raising=False)
        args = [
            "data=stsb",
            f"data.root={shared_data_dir}",
            "data.limit=64",
            "evaluation.show_progress=false",
            f"tracking.uri={uri}",
        ]
        assert evaluate_main(args) == 0
    client, run = _only_run(uri)
    return client, client.get_run(run.info.run_id), other_head, uri


def test_plain_stsb_run_logs_fewer_than_40_readable_params(stsb_run) -> None:
    _, run, _, _ = stsb_run
    params = run.data.params
    assert len(params) < 40, "\n".join(f"{k}={v}" for k, v in sorted(params.items()))
    assert not [k for k, v in params.items() if v in ("null", "None", "{}", "[]", "")]
    assert params["task"] == "sts" and params["data.name"] == "stsb"
    assert params["model.name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    # nothing that only classification/retrieval read, no unused splits
    assert not [k for k in params if k.split(".")[-1] in {"n_experiments", "k_values", "max_iter"}]
    assert not [k for k in params if k.startswith(("data.splits.dev", "data.splits.train", "model.token"))]


def test_run_is_named_from_the_model_and_carries_one_main_score(stsb_run) -> None:
    client, run, _, _ = stsb_run
    assert run.info.run_name == "all-MiniLM-L6-v2@stsb"
    metrics, tags = run.data.metrics, run.data.tags
    assert tags["main_score_name"] == "cosine_spearman"
    assert metrics["main_score"] == metrics["test/cosine_spearman"]
    # markdown that renders as written: the split and task in brackets are escaped, not a link
    assert tags["mlflow.note.content"] == (
        f"cosine\\_spearman = {metrics['main_score']:.5f}: all-MiniLM-L6-v2 on stsb \\[test\\] (sts)"
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "per_item/stsb")}
    assert artifacts == {"per_item/stsb/test.json"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "logs")] == ["logs/evaluate.log"]


def test_logged_model_is_found_and_metrics_carry_the_dataset(
    stsb_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, run, _, store_uri = stsb_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)  # what mlflow.search_logged_models() reads
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string="name = 'all-MiniLM-L6-v2'",
        output_format="list",
    )
    assert model.params["name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert model.params["sha256"].startswith("53aa5117")
    assert model.params["revision"] and model.params["pooling"]
    (dataset_input,) = run.inputs.dataset_inputs
    linked = {m.key: m for m in model.metrics}
    assert set(run.data.metrics) == set(linked)
    assert {(m.dataset_name, m.dataset_digest, m.run_id) for m in linked.values()} == {
        (dataset_input.dataset.name, dataset_input.dataset.digest, run.info.run_id)
    }
    assert [i.model_id for i in run.inputs.model_inputs] == [model.model_id]


def test_provenance_names_embsel_and_the_working_directory_apart(stsb_run) -> None:
    _, run, other_head, _ = stsb_run
    tags = run.data.tags
    assert tags["embsel.version"]
    assert other_head not in {tags.get("embsel.source_commit"), tags.get("mlflow.source.git.commit")}
    assert tags["workdir.git_commit"] == other_head
    package_root = Path(experiment_ui.__file__).resolve().parents[2]
    if (package_root / ".git").exists():  # an editable checkout: its own commit is recorded
        assert tags["embsel.source_commit"] == _git(package_root, "rev-parse", "HEAD")


def test_experiment_opens_as_classic_runs_with_embsels_view(stsb_run) -> None:
    client, run, _, _ = stsb_run
    tags = client.get_experiment(run.info.experiment_id).tags
    assert tags[experiment_ui.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert json.loads(tags[experiment_ui.VIEW_TAG])["name"] == experiment_ui.VIEW_NAME


def test_an_existing_experiment_without_the_tags_gets_them(store_uri: str) -> None:
    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("old")
    assert get_or_create_experiment(client, "old", store_uri) == experiment_id
    assert experiment_ui.EXPERIMENT_KIND_TAG in client.get_experiment(experiment_id).tags


def test_failed_run_shows_its_reason_and_keeps_overrides_and_job_log(store_uri: str) -> None:
    assert _exit_code(["data.root=/no/such/dir", f"tracking.uri={store_uri}"]) == 2
    client, run = _only_run(store_uri)
    assert run.info.status == "FAILED"
    reason = run.data.tags["error"]
    assert "/no/such/dir" in reason and reason in run.data.tags["mlflow.note.content"]
    log = Path(client.download_artifacts(run.info.run_id, "logs/evaluate.log")).read_text()
    assert f"run failed: {reason}" in log


def test_a_config_that_does_not_compose_still_logs_its_overrides(store_uri: str) -> None:
    typed = ["model.batch_sise=3", f"tracking.uri={store_uri}"]
    assert _exit_code(typed) == 2
    client, run = _only_run(store_uri)
    assert run.info.status == "FAILED" and "batch_sise" in run.data.tags["mlflow.note.content"]
    overrides = Path(client.download_artifacts(run.info.run_id, "overrides.yaml")).read_text()
    assert "model.batch_sise=3" in overrides


def test_under_mlflow_run_project_tags_stay_and_a_generated_name_is_replaced(
    store_uri: str, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("proj")
    project_tags = {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": "file:///repo",
        "mlflow.user": "ci",
    }
    created = client.create_run(experiment_id, run_name="brave-owl-417", tags=project_tags)
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    assert not {"mlflow.source.type", "mlflow.source.name", "mlflow.user"} & _source_tags("evaluate").keys()
    args = [f"model.name_or_path={tiny_st_dir}", "model.name=tiny", f"tracking.uri={store_uri}"]
    assert evaluate_main(args) == 0
    run = client.get_run(created.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{tiny_st_dir.name}@demo_sts"
    assert {k: run.data.tags[k] for k in project_tags} == project_tags


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_plain_evaluate_prints_no_python_warnings(run_cli, tiny_st_dir: Path) -> None:
    result = run_cli("evaluate", f"model.name_or_path={tiny_st_dir}", "model.name=tiny")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "viewStateShareKey=embsel" in result.stdout  # the direct link to the runs table


def test_names() -> None:
    assert model_display_name("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert model_display_name("/models/my-bert/") == "my-bert"
    assert is_generated_name("brave-owl-417") and not is_generated_name("all-MiniLM-L6-v2@stsb")


def test_params_keep_only_the_settings_of_the_task_run() -> None:
    evaluation = {
        "seed": 42,
        "k_values": [1, 10],
        "n_experiments": 10,
        "show_progress": True,
        "extra_metrics": [],
    }
    splits = {"test": {"path": "t.csv"}, "train": {"path": "tr.csv"}, "dev": {"path": None}}
    config = {
        "model": {"name": "m", "kind": "transformers", "pooling": "cls", "token": None},
        "evaluation": evaluation,
    }
    retrieval = readable_config({**config, "data": {"name": "d", "task": "retrieval", "splits": splits}})
    assert retrieval["evaluation"] == {"seed": 42, "k_values": [1, 10]}
    assert retrieval["data"]["splits"] == {"test": {"path": "t.csv"}} and retrieval["task"] == "retrieval"
    assert retrieval["model"] == {"name": "m", "kind": "transformers", "pooling": "cls"}
    classification = readable_config(
        {**config, "data": {"name": "d", "task": "classification", "splits": splits}}
    )
    assert classification["evaluation"] == {"seed": 42, "n_experiments": 10}
    assert set(classification["data"]["splits"]) == {"test", "train"}


def _result(task: str, per_item: pd.DataFrame, scores: dict[str, float], main: str) -> TaskResult:
    return TaskResult(
        task=task, dataset="banking77", split="test", scores=scores, main_score_name=main, per_item=per_item
    )


def test_many_class_confusions_are_named_and_pair_plot_marks_the_threshold() -> None:
    labels = [f"intent_{i}" for i in range(77)]
    gold = labels * 2
    predicted = [labels[(i + 1) % 77] if i % 7 == 0 else label for i, label in enumerate(gold)]
    frame = pd.DataFrame({"text": gold, "label": gold, "predicted": predicted})
    figure = result_figure(
        _result("classification", frame, {"accuracy": 0.9}, "accuracy"), "all-MiniLM-L6-v2"
    )
    ax = figure.axes[0]
    assert "all-MiniLM-L6-v2" in ax.get_title() and "banking77" in ax.get_title()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert 0 < len(ticks) <= MAX_MATRIX_CLASSES and "intent_0 -> intent_1" in ticks

    pairs = pd.DataFrame({"label": [0, 1, 0, 1], "cosine_score": [0.1, 0.9, 0.3, 0.7]})
    scores = {"cosine_ap": 1.0, "cosine_accuracy_threshold": 0.5}
    figure = result_figure(_result("pair_classification", pairs, scores, "cosine_ap"), "m")
    assert [line.get_xdata()[0] for line in figure.axes[0].get_lines()] == [0.5]


def test_select_params_hold_the_train_settings_only_when_it_fine_tunes() -> None:
    config = {"select": {"finetune_top_k": 0, "alpha": 0.05}, "train": {"learning_rate": 2e-5, "epochs": 1}}
    assert "train" not in readable_config(config)
    tuning = readable_config({**config, "select": {"finetune_top_k": 1, "alpha": 0.05}})
    assert tuning["train"] == {"learning_rate": 2e-5, "epochs": 1}


def test_a_url_password_in_the_model_path_is_stored_nowhere(
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``model.name_or_path=https://user:PASSWORD@host/m`` (here a local directory of that relative
    path, so the model loads and everything is logged): not in params, tags, the logged model's
    params and tags, artifacts, nor anywhere in the store's bytes."""
    import shutil

    password = "s3cretPW42"
    shutil.copytree(tiny_st_dir, tmp_path / "https:" / f"user:{password}@host" / "m")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    args = [f"model.name_or_path=https://user:{password}@host/m", "model.name=tiny", "model.offline=null"]
    args += ["model.revision=null", "data=demo_sts", "evaluation.show_progress=false", f"tracking.uri={uri}"]
    assert _exit_code(args) == 0
    client, run = _only_run(uri)
    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    seen = [run.data.params, run.data.tags, model.params, model.tags, {"name": model.name}]
    assert not [(key, text) for texts in seen for key, text in texts.items() if password in text]
    stored = [path for path in (tmp_path / "store").rglob("*") if path.is_file()]
    assert stored and not [path for path in stored if password.encode() in path.read_bytes()]
