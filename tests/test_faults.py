"""Issue 22's faults (item 10), checked through the real CLI as a new user meets them.

A real sqlite store, real Hydra composition, tiny models built locally; offline.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.test_train import _tiny


def _runs(tmp_path: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments])


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- a model scored under another model's name --------------------------------------------------


@pytest.mark.parametrize(
    "name_or_path",
    [  # the first two take 5-8 s each: the slow suite runs them
        pytest.param("/path/that/does/not/exist", marks=pytest.mark.slow),
        pytest.param("sentence-transformers/all-mpnet-base-v2", marks=pytest.mark.slow),
        "https://host.example/m",
    ],
)
def test_minilm_config_never_scores_the_packaged_minilm_for_another_model(run_cli, tmp_path, name_or_path):
    result = run_cli("evaluate", "model=minilm", f"model.name_or_path={name_or_path}")
    assert result.returncode == 2, result.stderr
    assert len(_error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags.get("embsel.model_origin") != "offline_package"
    assert "main_score" not in run.data.metrics


# --- remote code through a side door ------------------------------------------------------------

_CUSTOM_CODE = """\
import logging
import os
from pathlib import Path

Path(os.environ["EMBSEL_TEST_MARKER"]).write_text("remote code ran")

from transformers import BertConfig, BertModel


class CustomConfig(BertConfig):
    model_type = "bert"


class CustomModel(BertModel):
    config_class = CustomConfig
"""


@pytest.fixture
def remote_code_dir(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """The tiny BERT with an ``auto_map`` to its own Python code, which leaves a marker when imported."""
    import json
    import shutil

    directory = tmp_path / "custom_code_model"
    shutil.copytree(tiny_bert_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_code.CustomConfig", "AutoModel": "custom_code.CustomModel"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "custom_code.py").write_text(_CUSTOM_CODE)
    return directory


@pytest.mark.parametrize("kind", ["transformers", "sentence_transformers"])
@pytest.mark.parametrize(
    "route",
    [
        "+model.model_kwargs.trust_remote_code=true",
        "+model.model_kwargs.config_kwargs.trust_remote_code=true",
    ],
)
def test_remote_code_has_one_switch(run_cli, tmp_path, remote_code_dir, kind, route):
    marker = tmp_path / "marker.txt"
    result = run_cli(
        "evaluate",
        f"model.kind={kind}",
        f"model.name_or_path={remote_code_dir}",
        route,
        env={"EMBSEL_TEST_MARKER": str(marker)},
    )
    assert not marker.exists(), "the model directory's Python code ran"
    assert result.returncode == 2, result.stderr
    (line,) = _error_lines(result.stderr)
    assert "model.trust_remote_code" in line and "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_without_the_switch_no_code_runs_and_the_record_says_so(run_cli, tmp_path, remote_code_dir):
    # transformers knows the model_type (bert), so it loads its own class and ignores auto_map
    marker = tmp_path / "marker.txt"
    result = run_cli(
        "evaluate",
        "model.kind=transformers",
        f"model.name_or_path={remote_code_dir}",
        env={"EMBSEL_TEST_MARKER": str(marker)},
    )
    assert not marker.exists() and result.returncode == 0, result.stderr
    (run,) = _runs(tmp_path)
    assert run.data.params["model.trust_remote_code"] == "false"


# --- resume after SIGKILL -------------------------------------------------------------------------


def _tiny_train(st_dir: Path) -> list[str]:
    """test_train's tiny sentence-transformer on the demo retrieval qrels, a checkpoint every 5 steps."""
    steps = ["train.max_steps=60", "train.save_steps=5", "train.eval_steps=0"]
    return [*_tiny(st_dir), *steps, "train.log_model=false", "train.system_metrics=false"]


def _popen(step: str, args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "embsel_mlflow",
        step,
        *args,
        f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
    ]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _sigkill_at(proc: subprocess.Popen, line_part: str) -> str:
    """SIGKILL ``proc`` as soon as it prints a line containing ``line_part``; its output so far."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line_part in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    output = "".join(seen)
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    return output


@pytest.mark.slow  # three training processes and an evaluate (~1 min)
def test_a_sigkilled_train_run_is_repaired_and_resumed(tiny_st_dir: Path, tmp_path: Path) -> None:
    args = _tiny_train(tiny_st_dir)
    _sigkill_at(_popen("train", args, tmp_path), "step 20/60")
    (killed,) = _runs(tmp_path)
    assert killed.info.status == "RUNNING"  # SIGKILL left no chance to close it
    run_id = killed.info.run_id

    # resumed at once: the run is repaired (its process is gone), then continued ... and killed again
    output = _sigkill_at(_popen("train", [*args, f"train.resume={run_id}"], tmp_path), "step 40/60")
    assert "resuming from" in output and "RUNNING run" not in output, output[-3000:]

    # the next run on this host closes the killed run KILLED
    evaluate = _popen("evaluate", [f"model.name_or_path={tiny_st_dir}", "model.offline=null"], tmp_path)
    evaluate_output = evaluate.communicate(timeout=300)[0]
    assert evaluate.returncode == 0, evaluate_output[-3000:]
    runs = {run.info.run_id: run for run in _runs(tmp_path)}
    assert (
        runs[run_id].info.status == "KILLED" and "closed KILLED by embsel" in runs[run_id].data.tags["error"]
    )

    final = _popen("train", [*args, f"train.resume={run_id}"], tmp_path)
    output = final.communicate(timeout=300)[0]
    assert final.returncode == 0, output[-3000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED" and "error" not in resumed.data.tags
    steps = {m.step for m in client.get_metric_history(run_id, "train/loss")}
    assert steps == set(range(1, 61))  # the same final step, no gap (steps after a checkpoint run twice)
    assert len(runs) == 2  # the train run (resumed in place, twice) and the evaluate run


# --- training settings that fine-tune nothing, and damaged checkpoints -------------------------------


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("train.learning_rate=-1", "train.learning_rate must be a positive number, got -1.0"),
        ("train.learning_rate=0", "train.learning_rate must be a positive number, got 0.0"),
        ("train.max_steps=0", "train.max_steps must be a positive step count"),
        ("train.epochs=0", "train.epochs must be positive"),
    ],
)
def test_a_fine_tune_that_learns_nothing_is_refused_at_preflight(
    run_cli, tmp_path, tiny_st_dir, setting, needle
):
    result = run_cli("train", *_tiny(tiny_st_dir), setting)
    assert result.returncode == 2, result.stderr
    (line,) = _error_lines(result.stderr)
    assert needle in line and "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and needle in run.data.tags["error"]
    assert not list(tmp_path.rglob("checkpoint-*")) and not run.data.metrics


def _checkpoint(folder: Path) -> Path:
    """A checkpoint folder as transformers writes one: weights, optimizer state, trainer state last."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"weight": torch.ones(4, 4)}, folder / "model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.zeros(4)}}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text('{"global_step": 5}')
    return folder


def test_the_newest_complete_checkpoint_is_resumed_from(tmp_path: Path) -> None:
    from embsel_mlflow.training.trainer import last_checkpoint

    complete = _checkpoint(tmp_path / "checkpoint-5")
    _checkpoint(tmp_path / "checkpoint-10")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    (tmp_path / "checkpoint-10" / "trainer_state.json").unlink()  # killed while saving
    (tmp_path / "checkpoint-15").mkdir()  # killed before anything was written
    assert last_checkpoint(tmp_path) == complete


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("model.safetensors", "model.safetensors: unreadable safetensors"),
        ("optimizer.pt", "optimizer.pt: not a complete torch file"),
        ("trainer_state.json", "trainer_state.json: JSONDecodeError"),
    ],
)
def test_a_damaged_checkpoint_is_one_line(tmp_path: Path, damage: str, needle: str) -> None:
    from embsel_mlflow.errors import ConfigError
    from embsel_mlflow.training.trainer import check_checkpoint

    checkpoint = _checkpoint(tmp_path / "checkpoint-5")
    check_checkpoint(checkpoint)  # intact: accepted
    path = checkpoint / damage
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated, as a full disk leaves it
    with pytest.raises(ConfigError) as info:
        check_checkpoint(checkpoint)
    assert needle in str(info.value) and "delete that folder" in str(info.value)


# --- `mlflow run` with overrides that do not split ---------------------------------------------------


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_an_unbalanced_quote_under_mlflow_run_fails_its_run_with_the_reason(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(repo), "-e", "evaluate", "--env-manager", "local"]
    proc = subprocess.run(
        [*command, "-P", "overrides=model.name='unclosed"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert len(_error_lines(proc.stderr)) == 1, proc.stderr[-3000:]
    (run,) = mlflow.MlflowClient(uri).search_runs(["0"])
    assert run.info.status == "FAILED"
    assert "unclosed ' quote" in run.data.tags["error"]
    assert "unclosed ' quote" in run.data.tags["mlflow.note.content"]


# --- a quiet console ------------------------------------------------------------------------------

# What model2vec and transformers wrote while distilling: its INFO lines and its progress bars.
_DISTILL_NOISE = (
    "Changing padding",
    "Remapping ID",
    "Removed ",
    "Encoding tokens",
    "Applying PCA",
    "Saved model",
)
_DISTILL_NOISE += ("Loading weights", "it/s]", "Explained variance")


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_distilling_a_static_model_into_a_pipe_prints_only_embsel_lines(run_cli, tmp_path, tiny_bert_dir):
    result = run_cli(
        "evaluate",
        "model=static_minilm",
        f"model.name_or_path={tiny_bert_dir}",
        "model.offline=null",
        "model.revision=null",
        "model.static.pca_dims=16",
        f"model.static.dir={tmp_path / 'static'}",
    )
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr
    assert "distilling a static model" in console  # it did distil, here
    noise = [line for line in console.splitlines() if any(part in line for part in _DISTILL_NOISE)]
    assert not noise, noise


def test_quiet_model2vec_restores_what_it_changed() -> None:
    from model2vec.distill import inference

    from embsel_mlflow.models.static import quiet_model2vec

    bar = inference.tqdm
    logging.getLogger("skeletoken").setLevel(logging.DEBUG)
    try:
        with quiet_model2vec():
            assert logging.getLogger("skeletoken").level == logging.WARNING
            assert inference.tqdm is not bar  # pytest's stderr is not a terminal
        assert inference.tqdm is bar and logging.getLogger("skeletoken").level == logging.DEBUG
    finally:
        logging.getLogger("skeletoken").setLevel(logging.NOTSET)


@pytest.mark.slow  # a training run that logs its model (~40-80 s on 2 shared cores)
def test_training_into_a_pipe_prints_no_progress_bar(run_cli, tmp_path, tiny_st_dir):
    args = [*_tiny(tiny_st_dir), "train.max_steps=10", "train.save_steps=5", "train.eval_steps=0"]
    result = run_cli("train", *args, "train.system_metrics=false")
    assert result.returncode == 0, result.stderr
    console = result.stdout + result.stderr
    assert "step 10/10" in console and list(tmp_path.rglob("checkpoint-10"))  # it trained and saved
    bars = [line for line in console.splitlines() if "it/s]" in line or "example/s]" in line or "%|" in line]
    assert not bars, bars
