"""`embsel train` on a tiny model against a real sqlite store: the run, the logged model (fresh
process and HTTP), SIGTERM + resume, and bad input that fails before any training step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints import train as train_entrypoint
from embsel_mlflow.jobs.train import train_in_run

REGISTERED = "tiny_tuned"
TEXTS = ["A man is playing a guitar.", "How do I reset my card pin?", "The protein binds to the receptor."]


def _tiny(st_dir: Path) -> list[str]:
    """The tiny sentence-transformer under the minilm config, demo retrieval trained on its own qrels."""
    return [
        "model=minilm",
        f"model.name_or_path={st_dir}",
        "model.offline=null",
        "model.revision=null",
        "data=demo_retrieval",
        "data.train_split=test",  # the demo set has one split; the test checks plumbing, not generalisation
        "evaluation.show_progress=false",
        "train.batch_size=4",
        "train.learning_rate=0.005",
        "train.logging_steps=1",
    ]


def _client(cwd: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def _runs(cwd: Path) -> list:
    client = _client(cwd)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.fixture(scope="module")
def trained(tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One training run through the library call, the tuned model kept in memory."""
    from embsel_mlflow.config import TrainJobConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run

    cwd = tmp_path_factory.mktemp("train")
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        overrides = [
            *_tiny(tiny_st_dir),
            f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
            f"train.register={REGISTERED}",
            "train.system_metrics_interval_s=0.1",  # the first sample well inside a short training
            "train.epochs=3",
        ]
        cfg = compose_config("train", overrides)
        job = to_job_config(cfg, TrainJobConfig, "train")
        with tracked_run(job.tracking, entry_point="train", run_name="tiny train") as run:
            log_config(run, cfg, overrides)  # as `embsel train` does
            result = train_in_run(run, job)
        in_memory = result.encoder.encode(TEXTS)
    finally:
        os.chdir(previous)
    (record,) = _runs(cwd)
    return cwd, record, result, in_memory


def test_one_finished_run_with_baseline_tuned_and_delta(trained) -> None:
    _, run, result, _ = trained
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    assert metrics["baseline/test/main_score"] == pytest.approx(result.baseline.main_score)
    assert metrics["test/main_score"] == pytest.approx(result.result.main_score)
    assert metrics["test/ndcg_at_10"] == metrics["test/main_score"]  # what `evaluate` logs, same evaluator
    delta = metrics["delta/test/main_score"]
    assert delta == pytest.approx(metrics["test/main_score"] - metrics["baseline/test/main_score"])
    assert delta != 0.0  # the tuned model is not the base model
    assert metrics["delta/test/main_score_ci_low"] <= delta <= metrics["delta/test/main_score_ci_high"]
    assert 0.0 < metrics["delta/test/p_value"] <= 1.0
    assert result.objective == pytest.approx(metrics["validation/main_score"])


def test_training_curve_params_and_system_metrics(trained) -> None:
    cwd, run, _, _ = trained
    client = _client(cwd)
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    steps = [m.step for m in losses]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10  # every step, no gap, no duplicate
    for key in ("train/learning_rate", "train/grad_norm", "train/samples_per_second"):
        assert len(client.get_metric_history(run.info.run_id, key)) == len(steps), key
    assert len(client.get_metric_history(run.info.run_id, "validation/main_score")) == 3  # once per epoch
    params = run.data.params
    assert params["train.loss.name"] == "mnrl" and params["train_args.batch_sampler"] == "no_duplicates"
    assert params["train_args.learning_rate"] == "0.005" and params["train_args.report_to"] == "[]"
    assert any(key.startswith("system/") for key in run.data.metrics)  # MLflow system metrics
    assert not any(key.startswith("eval_ndcg") for key in run.data.metrics)  # transformers' own names


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_logged_model_loads_in_a_fresh_process_equal_to_the_trained_one(trained) -> None:
    cwd, run, _, in_memory = trained
    from tests.model_server import fresh_process_embeddings

    loaded = fresh_process_embeddings(
        f"runs:/{run.info.run_id}/model", TEXTS, cwd=cwd, tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}"
    )
    assert loaded.shape == in_memory.shape
    assert np.abs(loaded - in_memory).max() < 1e-5
    mlmodel = Path(_client(cwd).download_artifacts(run.info.run_id, "model/MLmodel")).read_text()
    assert "signature" in mlmodel and "input_example" in mlmodel and "trust_remote_code" not in mlmodel
    requirements = Path(
        _client(cwd).download_artifacts(run.info.run_id, "model/requirements.txt")
    ).read_text()
    assert "sentence-transformers==" in requirements and "torch==" in requirements
    (version,) = _client(cwd).search_model_versions(f"name = '{REGISTERED}'")
    assert version.run_id == run.info.run_id


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_logged_model_is_served_over_http(trained) -> None:
    from tests.model_server import served_embeddings

    cwd, run, _, in_memory = trained
    served = served_embeddings(
        f"runs:/{run.info.run_id}/model", TEXTS, cwd=cwd, tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}"
    )
    assert served.shape == in_memory.shape and np.abs(served - in_memory).max() < 1e-5


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "embsel_mlflow",
            "train",
            *args,
            f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow  # two training processes (~30 s idle); keeps the default suite within its budget
def test_sigterm_mid_training_is_killed_and_resume_reaches_the_same_final_step(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    args = [*_tiny(tiny_st_dir), "train.max_steps=20", "train.eval_steps=0", "train.save_steps=0"]
    args += ["train.log_model=false", "train.system_metrics=false"]  # checkpoints: only the signal's
    first = _cli(args, tmp_path)
    assert first.stdout is not None
    seen = []
    for line in first.stdout:  # the console's step lines: SIGTERM once training is under way
        seen.append(line)
        if "step 5/20" in line:
            first.send_signal(signal.SIGTERM)
            break
    output = "".join(seen) + first.stdout.read()
    assert first.wait(timeout=120) == 143, output[-3000:]
    (killed,) = _runs(tmp_path)
    assert killed.info.status == "KILLED", output[-3000:]
    run_id = killed.info.run_id
    client = _client(tmp_path)
    stopped_at = max(m.step for m in client.get_metric_history(run_id, "train/loss"))
    assert 5 <= stopped_at < 20  # the metrics so far are kept
    checkpoints = {p.name for p in Path(killed.data.tags["embsel.train.output_dir"]).glob("checkpoint-*")}
    assert checkpoints == {f"checkpoint-{stopped_at}"}  # written at the signal

    second = _cli([*args, f"train.resume={run_id}"], tmp_path)
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-3000:]
    (resumed,) = _runs(tmp_path)  # the same run, not a new one
    assert resumed.info.run_id == run_id and resumed.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert sorted(steps) == list(range(1, 21))  # same final step, no gap, no duplicate
    assert "error" not in resumed.data.tags


def _main(args: list[str], cwd: Path) -> int:
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return train_entrypoint.main([*args, f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"])
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(previous)


BAD_INPUT = {
    "unknown loss": (["train.loss.name=triplet_of_doom"], "unknown loss 'triplet_of_doom'"),
    "loss does not fit the data": (
        ["data=demo_sts", "train/loss=mnrl"],
        "loss 'mnrl' needs (anchor, positive) pairs, but demo_sts/test (sts) gives scored pairs",
    ),
    "fewer pairs than one batch": (["train.batch_size=64"], "fewer than one batch (train.batch_size=64)"),
    "sampler cannot fill a batch": (
        ["data=demo_classification", "data.train_split=train", "train.batch_size=30"],
        "the no_duplicates sampler cannot fill a batch of 30",
    ),
}


@pytest.fixture(scope="module")
def bad_input_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the bad-input cases (a fresh sqlite store costs seconds); one experiment each."""
    return tmp_path_factory.mktemp("train_bad_input")


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_a_failed_run_before_any_training_step(
    case: str, tiny_st_dir: Path, bad_input_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, message = BAD_INPUT[case]
    experiment = f"tracking.experiment=bad_{list(BAD_INPUT).index(case)}"
    assert _main([*_tiny(tiny_st_dir), *extra, experiment], bad_input_store) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    client = _client(bad_input_store)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment.split("=")[1]).experiment_id])
    assert run.info.status == "FAILED" and message in run.data.tags["error"]
    assert not any(key.startswith("train/loss") for key in run.data.metrics)
    assert not list(bad_input_store.rglob("checkpoint-*"))


def test_resume_of_a_run_that_is_not_a_train_run_fails_without_touching_it(
    tiny_st_dir: Path, bad_input_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = _client(bad_input_store)
    experiment = client.create_experiment("not_train")
    other = client.create_run(experiment, tags={"embsel.entry_point": "evaluate"})
    client.set_terminated(other.info.run_id, "FINISHED")
    args = [*_tiny(tiny_st_dir), f"train.resume={other.info.run_id}", "tracking.experiment=not_train"]
    assert _main(args, bad_input_store) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "names a evaluate run, not a train run" in error
    runs = {r.info.run_id: r for r in client.search_runs([experiment])}
    assert runs.pop(other.info.run_id).info.status == "FINISHED"  # untouched
    (failed,) = runs.values()
    assert failed.info.status == "FAILED" and "not a train run" in failed.data.tags["error"]


def test_a_trained_model_is_a_candidate_via_from_run(trained) -> None:
    """`model=from_run model.run_id=...` loads the logged model; evaluate scores it as the run did."""
    from embsel_mlflow.entrypoints import evaluate as evaluate_entrypoint

    cwd, run, _, _ = trained
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        args = ["model=from_run", f"model.run_id={run.info.run_id}", "data=demo_retrieval"]
        args += ["evaluation.show_progress=false", "tracking.experiment=from_run"]
        assert evaluate_entrypoint.main([*args, f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"]) == 0
    finally:
        os.chdir(previous)
    client = _client(cwd)
    (evaluated,) = client.search_runs([client.get_experiment_by_name("from_run").experiment_id])
    expected = run.data.metrics["test/main_score"]
    assert evaluated.data.metrics["main_score"] == pytest.approx(expected, abs=1e-6)
    assert evaluated.info.run_name == f"ft({run.info.run_id[:8]})@demo_retrieval"  # not the base's name


def test_the_tuned_model_has_an_identity_of_its_own(trained, tiny_st_dir: Path) -> None:
    """Its logged model: named ``<base>+ft(<run>)``, its own source and the sha256 of the weights
    this run logged (not the base's), linked to the version the run registered."""
    import json

    from embsel_mlflow.models.resolve import sha256_file
    from embsel_mlflow.tracking.markdown import escape

    cwd, run, _, _ = trained
    client = _client(cwd)
    run_id = run.info.run_id
    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert model.name == f"{tiny_st_dir.name}+ft({run_id[:8]})"
    (cwd / "dl").mkdir(exist_ok=True)
    logged = Path(client.download_artifacts(run_id, "model/artifacts/weights", str(cwd / "dl")))
    tuned_sha = sha256_file(logged / "model.safetensors")
    base_sha = sha256_file(tiny_st_dir / "model.safetensors")
    assert model.params["sha256"] == tuned_sha != base_sha
    assert model.params["source"] == f"runs:/{run_id}/model" and model.params["origin"] == "fine_tuned"
    assert run.data.tags["embsel.model_sha256"] == tuned_sha
    (version,) = client.search_model_versions(f"name='{REGISTERED}'")
    # what the Models tab and the model page read (a sqlite registry keeps no model_id on a version)
    linked = json.loads(model.tags["mlflow.modelVersions"])
    assert linked == [{"name": REGISTERED, "version": str(version.version)}]
    # the description: the tuned score, the delta vs the zero-shot baseline, escaped markdown
    description = run.data.tags["mlflow.note.content"]
    assert escape(f"{tiny_st_dir.name}+ft({run_id[:8]}) on demo_retrieval [test] (retrieval)") in description
    assert f"delta {run.data.metrics['delta/test/main_score']:+.5f} vs the zero-shot baseline" in description
