"""Logged image models answer ``predict`` in a fresh process as they embedded in evaluation.

A real sqlite store: the model is logged and registered with ``log_embedding_model``, then loaded
with ``mlflow.pyfunc.load_model("models:/NAME@champion")`` in a new interpreter in which
``embsel_mlflow`` cannot be imported (the served model must stand alone with what it ships).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates import build_encoder
from embsel_mlflow.config import ImageFeaturesConfig, MediaConfig, ModelConfig
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.media import Media
from embsel_mlflow.media.paths import make_media
from embsel_mlflow.models.cache import EmbeddingCache
from embsel_mlflow.tracking.embedding_model import (
    fetch_logged_model,
    log_embedding_model,
    save_embedding_model,
)
from tests.tiny_media_models import build_tiny_clip, write_digit_pngs

CAPTIONS = ["a handwritten digit 3", "a photo of the number seven", "the cat sat on the mat"]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("digits")
    return root, [name for name, _ in write_digit_pngs(root, 400)]


def _items(root: Path, names: list[str]) -> list[Media]:
    return [
        make_media(name, "image", root=root, row=row, where="digits/test", limits=MediaConfig())
        for row, name in enumerate(names)
    ]


class ImagesFamily:
    """What a fitted model asks of an image family: the images to fit on (never labels)."""

    name = "image_classification"
    ranks_documents = False

    def __init__(self, train: list[Media]) -> None:
        self.train = train

    def fit_texts(self, data: TaskData) -> tuple[list[Media], str]:
        return list(self.train), "train split (no labels)"

    def calibration_texts(self, examples: object) -> list[str]:
        return []


def _run(store_uri: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(store_uri)
    experiment = client.create_experiment("serving")
    return client, client.create_run(experiment).info.run_id


def _fresh_predictions(
    model_uri: str, requests: list[dict[str, Any]], *, cwd: Path, store_uri: str
) -> list[Any]:
    """Each request's ``predict(inputs, params)`` in one new interpreter without embsel_mlflow.

    A request that raises gives ``{"error": "<one line>"}``.
    """
    code = (
        "import json, sys\n"
        "sys.modules['embsel_mlflow'] = None  # the served model must not need the package\n"
        "import mlflow, numpy as np\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        f"out = []\n"
        f"for request in json.loads({json.dumps(requests)!r}):\n"
        "    try:\n"
        "        answer = model.predict(request['inputs'], params=request.get('params'))\n"
        "        out.append(np.asarray(answer).tolist())\n"
        "    except Exception as err:\n"
        "        out.append({'error': str(err)})\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.mark.slow  # 9-11 s; kept out of the 10-minute default suite
def test_a_registered_clip_model_answers_image_paths_base64_and_texts_in_a_fresh_process(
    tiny_clip_dir: Path, digits, store_uri: str, tmp_path: Path
) -> None:
    root, names = digits
    names = names[:24]
    cfg = ModelConfig(
        name="tiny_clip",
        name_or_path=str(tiny_clip_dir),
        kind="clip",
        normalize=True,
        query_prompt="a photo of ",
        batch_size=10,
    )
    model = build_encoder(cfg, cache=EmbeddingCache(tmp_path / "cache"))
    images = model.encode(_items(root, names))
    texts = model.encode(CAPTIONS)
    queries = model.encode(CAPTIONS, role="query")
    client, run_id = _run(store_uri)
    ref = log_embedding_model(client, run_id, model, "tiny_clip", register="digits-clip", alias="champion")
    assert ref.registered_uri == "models:/digits-clip/1"

    paths = [str(root / name) for name in names]
    answers = _fresh_predictions(
        "models:/digits-clip@champion",
        [
            {"inputs": paths},  # detected: files whose bytes are PNG
            {"inputs": [_b64(root / name) for name in names]},  # detected: base64 of PNG
            {"inputs": paths[:3], "params": {"modality": "image"}},
            {"inputs": CAPTIONS},
            {"inputs": CAPTIONS, "params": {"role": "query"}},
            {"inputs": [CAPTIONS[0], paths[0]]},
            {"inputs": ["not base64 and no file"], "params": {"modality": "image"}},
            {"inputs": [paths[0]], "params": {"modality": "audio"}},
        ],
        cwd=tmp_path,
        store_uri=store_uri,
    )
    assert np.abs(np.asarray(answers[0]) - images).max() < 1e-5
    assert np.abs(np.asarray(answers[1]) - images).max() < 1e-5
    assert np.abs(np.asarray(answers[2]) - images[:3]).max() < 1e-5
    assert np.abs(np.asarray(answers[3]) - texts).max() < 1e-5
    assert np.abs(np.asarray(answers[4]) - queries).max() < 1e-5
    mixed, not_an_image, wrong_modality = answers[5]["error"], answers[6]["error"], answers[7]["error"]
    assert "inputs of several kinds (image, text)" in mixed and "\n" not in mixed
    assert not_an_image.startswith("input 0: neither an existing file nor base64 bytes")
    assert wrong_modality == "this model embeds image and text, not audio"

    # What was logged: the weights as safetensors, the forward module and media_io beside the pyfunc.
    logged = fetch_logged_model(run_id, tmp_path / "fetched", tracking_uri=store_uri)
    assert logged.backend == "media" and logged.kind == "clip"
    assert (logged.weights / "model.safetensors").is_file() and not list(logged.weights.glob("*.bin"))
    import mlflow.artifacts

    whole = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/model", dst_path=str(tmp_path / "whole"), tracking_uri=store_uri
        )
    )
    assert {path.name for path in (whole / "code").iterdir()} >= {"clip_forward.py", "media_io.py"}
    requirements = (whole / "requirements.txt").read_text()
    assert all(f"{package}==" in requirements for package in ("transformers", "torch", "pillow", "mlflow"))


def test_from_run_rebuilds_a_logged_clip_model(
    tiny_clip_dir: Path, digits, store_uri: str, tmp_path: Path
) -> None:
    root, names = digits
    items = _items(root, names[:10])
    cfg = ModelConfig(name="tiny_clip", name_or_path=str(tiny_clip_dir), kind="clip", normalize=True)
    model = build_encoder(cfg)
    client, run_id = _run(store_uri)
    log_embedding_model(client, run_id, model, "tiny_clip")
    again = build_encoder(
        ModelConfig(name="from_run", name_or_path="-", kind="from_run", run_id=run_id),
        cache=EmbeddingCache(tmp_path / "cache"),
        tracking_uri=store_uri,
    )
    assert again.identity["kind"] == "clip"
    assert np.abs(again.encode(items) - model.encode(items)).max() < 1e-6
    assert np.abs(again.encode(CAPTIONS) - model.encode(CAPTIONS)).max() < 1e-6


def test_a_registered_image_baseline_answers_image_paths_in_a_fresh_process(
    digits, store_uri: str, tmp_path: Path
) -> None:
    root, names = digits
    train, test = _items(root, names[:300]), names[300:340]
    cfg = ModelConfig(
        name="image_hog_pca",
        name_or_path="hog-pca",
        kind="image_features",
        image_features=ImageFeaturesConfig(features="hog", dim=24),
    )
    model = build_encoder(cfg, cache=EmbeddingCache(tmp_path / "cache"))
    unfitted = model
    client, run_id = _run(store_uri)
    with pytest.raises(Exception, match="fit it on a dataset first"):
        log_embedding_model(client, run_id, unfitted, "image_hog_pca")
    fitted = model.for_dataset(
        TaskData("digits", "image_classification", "test", None, family=ImagesFamily(train))
    )
    expected = fitted.encode(_items(root, test))
    log_embedding_model(client, run_id, fitted, "image_hog_pca", register="digits-baseline", alias="champion")

    paths = [str(root / name) for name in test]
    answers = _fresh_predictions(
        "models:/digits-baseline@champion",
        [
            {"inputs": paths},  # an image-only model takes its one modality without looking
            {"inputs": [_b64(root / name) for name in test[:5]]},
            {"inputs": ["a handwritten digit"], "params": {"modality": "text"}},
        ],
        cwd=tmp_path,
        store_uri=store_uri,
    )
    assert np.abs(np.asarray(answers[0]) - expected).max() < 1e-5
    assert np.abs(np.asarray(answers[1]) - expected[:5]).max() < 1e-5
    assert answers[2]["error"] == "this model embeds image, not text"

    # A from_run candidate (and monitor's registered model) reload the saved fit as it is.
    again = build_encoder(
        ModelConfig(name="from_run", name_or_path="-", kind="from_run", run_id=run_id), tracking_uri=store_uri
    )
    assert again.fitted_on.startswith("saved fit")
    assert np.abs(again.encode(_items(root, test)) - expected).max() < 1e-6


def test_a_text_model_still_serves_as_before(tiny_st_dir: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    cfg = ModelConfig(name="tiny", name_or_path=str(tiny_st_dir), query_prompt="query: ")
    model = build_encoder(cfg)
    path = save_embedding_model(model, "tiny", tmp_path / "saved", cfg=cfg)
    loaded = mlflow.pyfunc.load_model(str(path))
    params = [spec.name for spec in loaded.metadata.get_params_schema().params]
    assert params == ["role"]  # unchanged: no modality parameter on text models
    settings = json.loads((tmp_path / "saved" / "settings.json").read_text())
    assert settings["backend"] == "sentence_transformers"
    assert not (path / "code" / "media_io.py").exists()
    for role in (None, "query"):
        got = loaded.predict(CAPTIONS, params={"role": role} if role else None)
        assert np.abs(got - model.encode(CAPTIONS, role=role)).max() < 1e-5


def test_from_run_refuses_what_it_cannot_load_in_one_line(store_uri: str, tmp_path: Path) -> None:
    from embsel_mlflow.errors import ModelError

    _, run_id = _run(store_uri)
    with pytest.raises((ConfigError, ModelError)) as info:
        build_encoder(
            ModelConfig(name="from_run", name_or_path="-", kind="from_run", run_id=run_id),
            tracking_uri=store_uri,
        )
    assert run_id in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow  # process-level (a real `mlflow models serve`); CI runs -m slow too
def test_a_registered_image_baseline_is_served_over_http_on_image_paths(
    digits, store_uri: str, tmp_path: Path
) -> None:
    from tests.model_server import served_embeddings

    root, names = digits
    cfg = ModelConfig(name="image_pixels_pca", name_or_path="pixels-pca", kind="image_features")
    data = TaskData(
        "digits", "image_classification", "test", None, family=ImagesFamily(_items(root, names[:200]))
    )
    fitted = build_encoder(cfg).for_dataset(data)
    test = names[200:220]
    client, run_id = _run(store_uri)
    log_embedding_model(
        client, run_id, fitted, "image_pixels_pca", register="digits-pixels", alias="champion"
    )
    served = served_embeddings(
        "models:/digits-pixels@champion",
        [str(root / name) for name in test],
        cwd=tmp_path,
        tracking_uri=store_uri,
    )
    assert np.abs(served - fitted.encode(_items(root, test))).max() < 1e-5
