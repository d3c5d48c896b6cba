"""Issue 20's image bars as a new user meets them: the CLI, a real sqlite store, offline.

The digits come from ``embsel demo-data digits``, the data config is ``conf/data/digits.yaml`` and
the candidates are ``conf/model/``'s; nothing is registered for the tests and the modality guard
runs as shipped (no ``profile.allow_modality_mismatch``). Selection and the champion are in
``tests/test_select_media.py``, drift and the registered champion in ``tests/test_monitor_media.py``.

- evaluate: the image baselines reach MTEB-protocol accuracy >= 0.85 on the digits, FINISHED;
- bad media: a missing file, a corrupt image and a zero-length clip are each one ``error:`` line
  naming the row and the file, exit 2, and one FAILED run holding the reason, nothing else;
- the modality guard routes: a text model on the digits is refused in one line naming ``clip``
  and ``image_features`` (before anything loads: a model that is not even there gets that line),
  in evaluate, select and monitor (``model_uri``: the registered model's kind); a ``from_run``
  model is judged by the kind it was logged as.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from mlflow import MlflowClient

from tests.cli_harness import Store, assert_one_line_error, invoke

ROUTED = (
    "embeds text only; task image_classification embeds image: use a kind that does: clip, image_features"
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("media_bars")
    result = invoke("demo-data", "digits", "digits", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd


@pytest.fixture(scope="module")
def store(workspace: Path) -> Store:
    """One store for the module, created (and migrated) here: each test diffs its own runs."""
    from embsel_mlflow.tracking.store import open_store

    made = Store(workspace / "store")
    made.folder.mkdir()
    open_store(made.uri)
    return made


def _digits(cwd: Path, store: Store, *extra: str) -> list[str]:
    return [
        "data=digits",
        f"data.root={cwd / 'digits'}",
        f"tracking.uri={store.uri}",
        f"cache.dir={cwd / 'cache'}",
        "evaluation.show_progress=false",
        *extra,
    ]


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("model", ["image_pixels_pca", "image_hog_pca"])
def test_an_image_baseline_on_the_digits_reaches_the_accuracy_bar(
    workspace: Path, store: Store, model: str
) -> None:
    before = store.snapshot()
    result = invoke("evaluate", f"model={model}", *_digits(workspace, store), cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not result.error_lines
    (run,) = store.diff_since(before).assert_only_new_runs(status="FINISHED")
    accuracy = float(run.metrics["test/accuracy"])
    print(f"{model} on digits [test]: MTEB-protocol accuracy {accuracy:.4f}")
    assert accuracy >= 0.85
    assert run.metrics["main_score"] == accuracy and run.tags["embsel.task"] == "image_classification"
    assert f"{model} on digits [test]: accuracy = {accuracy:.5f}" in result.stdout
    # fitted on the 900 train images (inputs only), the 597 test images scored
    assert "images_encoded" in run.metrics and "texts_encoded" not in run.metrics


# --------------------------------------------------------------------------- bad media


def _bad_image_csv(digits: Path, case: str) -> str:
    """The test split with one bad row (row 6 of the file) of kind ``case``; the csv's name."""
    rows = pd.read_csv(digits / "test.csv").head(5)
    if case == "missing":
        bad = "images/no_such_digit.png"
    elif case == "not_an_image":
        bad = "bad/note.png"
        (digits / "bad").mkdir(exist_ok=True)
        (digits / bad).write_text("a .png that is really text")
    else:  # truncated: a real PNG cut short (its last chunk and checksum gone)
        bad = "bad/cut.png"
        (digits / "bad").mkdir(exist_ok=True)
        data = (digits / rows["image"].iloc[0]).read_bytes()
        (digits / bad).write_bytes(data[: len(data) - 20])
    frame = pd.concat(
        [rows, pd.DataFrame({"image": [bad], "label": ["3"], "text": ["a handwritten digit 3"]})]
    )
    name = f"test_{case}.csv"
    frame.to_csv(digits / name, index=False)
    return name


@pytest.mark.parametrize("case", ["missing", "not_an_image", "truncated"])
def test_a_bad_image_is_one_line_exit_2_and_a_failed_run(workspace: Path, store: Store, case: str) -> None:
    digits = workspace / "digits"
    csv = _bad_image_csv(digits, case)
    before = store.snapshot()
    args = _digits(workspace, store, f"data.splits.test.path={csv}")
    result = invoke("evaluate", "model=image_pixels_pca", *args, cwd=workspace)
    message = assert_one_line_error(result, f"row 6 of {digits / csv}")
    assert {"missing": "no_such_digit.png", "not_an_image": "bad/note.png", "truncated": "bad/cut.png"}[
        case
    ] in message
    assert message.endswith("or set data.on_bad_media=skip to leave such rows out")
    (run,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message


def test_a_zero_length_clip_is_one_line_exit_2_and_a_failed_run(store: Store, tmp_path: Path) -> None:
    """A tiny audio data config of the user's own (hydra.searchpath), one clip of 0 samples."""
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        soundfile.write(clips / f"c{i}.wav", (0.1 * rng.standard_normal(8_000)).astype(np.float32), 16_000)
    soundfile.write(clips / "empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    assert soundfile.info(str(clips / "empty.wav")).frames == 0
    pd.DataFrame({"audio": [f"c{i}.wav" for i in range(6)], "label": ["a", "b"] * 3}).to_csv(
        clips / "train.csv", index=False
    )
    pd.DataFrame({"audio": ["c6.wav", "c7.wav", "empty.wav"], "label": ["a", "b", "a"]}).to_csv(
        clips / "test.csv", index=False
    )
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "clips.yaml").write_text(
        f"name: clips\ntask: audio_classification\nroot: {clips}\n"
        "splits:\n  train: {path: train.csv}\n  test: {path: test.csv}\n"
    )
    before = store.snapshot()
    result = invoke(
        "evaluate",
        "model=audio_mfcc_pca",
        "data=clips",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"tracking.uri={store.uri}",
        f"cache.dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    message = assert_one_line_error(result, f"row 3 of {clips / 'test.csv'} ('empty.wav')")
    assert "empty" in message.split("'empty.wav'", 1)[1]  # says why: the clip has no samples
    (run,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message


# --------------------------------------------------------------------------- the modality guard


@pytest.mark.parametrize(
    "model",
    [
        ["model=lsa"],  # a text kind fitted per dataset: it used to crash fitting on images
        ["model=minilm", "model.name_or_path=/nonexistent/minilm"],  # refused before it would load
    ],
    ids=["lsa", "absent_minilm"],
)
def test_evaluate_refuses_a_text_model_on_the_digits_naming_the_kinds_that_fit(
    workspace: Path, store: Store, model: list[str]
) -> None:
    before = store.snapshot()
    result = invoke("evaluate", *model, *_digits(workspace, store), cwd=workspace)
    message = assert_one_line_error(result, ROUTED)
    assert message.startswith(f"model '{model[0].split('=')[1]}' (kind ")
    (run,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message


def test_select_refuses_a_text_candidate_on_the_digits_before_any_child(
    workspace: Path, store: Store
) -> None:
    before = store.snapshot()
    result = invoke(
        "select",
        "candidates=[image_pixels_pca,lsa]",
        "datasets=[digits]",
        f"datasets.digits.root={workspace / 'digits'}",
        f"tracking.uri={store.uri}",
        f"cache.dir={workspace / 'cache'}",
        cwd=workspace,
    )
    message = assert_one_line_error(result, ROUTED)
    assert message.startswith("model 'lsa' (kind lsa)")
    (parent,) = store.diff_since(before).assert_only_new_runs(status="FAILED")  # no child was opened
    assert parent.tags["error"] == message


def test_a_fitted_winner_over_two_datasets_is_not_registered_and_says_why(
    workspace: Path, store: Store
) -> None:
    before = store.snapshot()
    result = invoke(
        "select",
        "candidates=[image_pixels_pca]",
        "datasets=[digits,digits_clustering]",
        f"datasets.digits.root={workspace / 'digits'}",
        f"datasets.digits_clustering.root={workspace / 'digits'}",
        "datasets.digits.limit=200",
        "datasets.digits_clustering.limit=200",
        "select.register=two_fits",
        "select.resamples=100",
        "select.efficiency.sample_size=8",
        "select.efficiency.latency_queries=2",
        "evaluation.show_progress=false",
        f"tracking.uri={store.uri}",
        f"cache.dir={workspace / 'cache'}",
        cwd=workspace,
    )
    message = assert_one_line_error(result, "could not register 'image_pixels_pca' as two_fits")
    assert "is fitted per dataset and was fitted on 2 datasets: select over one dataset" in message
    runs = store.diff_since(before).new_runs.values()
    assert sorted(r.status for r in runs) == ["FAILED", "FINISHED", "FINISHED"]  # the parent, two children
    assert not MlflowClient(store.uri).search_registered_models("name = 'two_fits'")


def test_monitor_refuses_a_registered_text_model_on_the_digits(
    workspace: Path, store: Store, tiny_st_dir: Path
) -> None:
    """``model_uri``: the model config is known only once the registered model is read."""
    from embsel_mlflow.candidates import build_encoder
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.tracking.embedding_model import log_embedding_model

    client = MlflowClient(store.uri)
    run_id = client.create_run(
        client.create_experiment("registered", str(store.folder / "mlruns"))
    ).info.run_id
    text_model = build_encoder(ModelConfig(name="tiny", name_or_path=str(tiny_st_dir)))
    log_embedding_model(client, run_id, text_model, "tiny", register="text_model", alias="champion")
    client.set_terminated(run_id)
    before = store.snapshot()
    result = invoke(
        "monitor",
        "model_uri=models:/text_model@champion",
        *_digits(workspace, store, "current.paths=[digits/windows/plain.csv]"),
        cwd=workspace,
    )
    message = assert_one_line_error(result, ROUTED)
    assert message.startswith("model 'tiny' (kind sentence_transformers)")
    (parent,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert parent.tags["error"] == message


def test_a_from_run_image_fit_is_judged_by_its_logged_kind(workspace: Path, store: Store) -> None:
    """A run that logged an image feature fit (at ``model``, as train logs): ``model=from_run`` on the
    digits runs (the guard asks the logged kind), and scores as the fit it loaded."""
    from embsel_mlflow.candidates import BuildContext, build_encoder
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.profiling.modality import ModalityMismatch, refuse_candidate
    from embsel_mlflow.tracking.embedding_model import log_embedding_model
    from tests.test_select_media import digits_config, model_config

    client = MlflowClient(store.uri)
    run_id = client.create_run(client.create_experiment("fits", str(store.folder / "mlruns"))).info.run_id
    data = load_task_data(digits_config(workspace / "digits"))
    fitted = build_encoder(model_config("image_hog_pca")).for_dataset(data)
    log_embedding_model(client, run_id, fitted, "image_hog_pca")
    client.set_terminated(run_id)
    # the guard without a cache to keep the download in: it reads the logged settings alone
    logged = ModelConfig(name="tuned", name_or_path="from_run", kind="from_run", run_id=run_id)
    refuse_candidate(logged, "image_classification", BuildContext(tracking_uri=store.uri))
    with pytest.raises(
        ModalityMismatch, match=r"^model 'tuned' \(kind from_run\) embeds image only; task classific"
    ):
        refuse_candidate(logged, "classification", BuildContext(tracking_uri=store.uri))
    before = store.snapshot()
    result = invoke(
        "evaluate", "model=from_run", f"model.run_id={run_id}", *_digits(workspace, store), cwd=workspace
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = store.diff_since(before).assert_only_new_runs(status="FINISHED")
    # the same config evaluated directly fits the same images: the same score
    before = store.snapshot()
    result = invoke("evaluate", "model=image_hog_pca", *_digits(workspace, store), cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    (direct,) = store.diff_since(before).assert_only_new_runs(status="FINISHED")
    assert run.metrics["test/accuracy"] == pytest.approx(direct.metrics["test/accuracy"], abs=1e-12)
