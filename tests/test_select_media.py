"""`embsel select` over the image baselines on the digits, and the champion it registers.

As a new user would run it, through the CLI (Hydra, a real sqlite store, offline): the digits
written by ``embsel demo-data digits``, ``conf/data/digits.yaml`` (``image_classification``) and
the two image candidates of ``conf/model/`` (``image_pixels_pca``, ``image_hog_pca``: the
``image_features`` kind, fitted per dataset on the train images), with ``select.register``.

The bars checked here (issue 20): one parent, a FINISHED child per candidate, a leaderboard
with bootstrap CIs and the paired test, efficiency in images per second; the champion registered
and answering ``predict`` on image paths and base64 bytes in a fresh process, equal to the
embeddings evaluation computed. Audio efficiency is in seconds of audio per second, measured
here on real WAV files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from embsel_mlflow.candidates import build_encoder
from embsel_mlflow.config import DataConfig, EfficiencyConfig, ModelConfig
from embsel_mlflow.families import load_task_data
from tests.cli_harness import OFFLINE_ENV, invoke
from tests.conftest import REPO_ROOT

CANDIDATES = ("image_pixels_pca", "image_hog_pca")
REGISTERED = "digits_embedder"


def model_config(name: str) -> ModelConfig:
    """``conf/model/<name>.yaml`` as the schema reads it."""
    node = OmegaConf.merge(
        OmegaConf.structured(ModelConfig), OmegaConf.load(REPO_ROOT / "conf" / "model" / f"{name}.yaml")
    )
    return OmegaConf.to_object(node)  # type: ignore[return-value]


def digits_config(root: Path) -> DataConfig:
    """``conf/data/digits.yaml`` with ``data.root`` set, as the CLI composes it."""
    node = OmegaConf.merge(
        OmegaConf.structured(DataConfig), OmegaConf.load(REPO_ROOT / "conf" / "data" / "digits.yaml")
    )
    node.root = str(root)
    return OmegaConf.to_object(node)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with the digits written by the CLI, as the README tells a new user."""
    cwd = tmp_path_factory.mktemp("select_media")
    result = invoke("demo-data", "digits", "digits", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd


@pytest.fixture(scope="module")
def selected(workspace: Path) -> tuple[Any, Any, list, str]:
    result = invoke(
        "select",
        f"tracking.uri=sqlite:///{workspace / 'mlflow.db'}",
        f"cache.dir={workspace / 'cache'}",
        f"candidates=[{','.join(CANDIDATES)}]",
        "datasets=[digits]",
        f"datasets.digits.root={workspace / 'digits'}",
        f"select.register={REGISTERED}",
        "evaluation.show_progress=false",
        "select.resamples=300",
        "select.efficiency.sample_size=64",
        "select.efficiency.latency_queries=8",
        cwd=workspace,
    )
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return result, parents, children, result.stdout


def test_a_parent_and_a_finished_child_per_image_candidate(selected) -> None:
    result, parents, children, _ = selected
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == sorted(f"{n}@digits" for n in CANDIDATES)
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["embsel.task"] == "image_classification"
        assert child.data.metrics["test/accuracy"] >= 0.85  # MTEB's protocol on real digits: the bar
        assert child.data.metrics["images_encoded"] > 597 and "texts_encoded" not in child.data.metrics
    print(result.stdout)


def test_efficiency_is_in_images_per_second(selected) -> None:
    _, _, children, _ = selected
    for child in children:
        metrics = child.data.metrics
        assert metrics["efficiency/images_per_second"] > 0
        assert metrics["efficiency/latency_p95_ms"] >= metrics["efficiency/latency_p50_ms"] > 0
        # never read in the wrong unit: no texts/s or tokens/s for images
        assert "efficiency/texts_per_second" not in metrics and "efficiency/tokens_per_second" not in metrics
        assert child.data.tags["embsel.efficiency_source"] == "measured"
    dims = {c.info.run_name.split("@")[0]: c.data.metrics["efficiency/embedding_dim"] for c in children}
    assert dims == dict.fromkeys(CANDIDATES, 32.0)  # image_features.dim of both configs


def test_the_leaderboard_has_cis_paired_tests_and_images_per_second(selected, workspace: Path) -> None:
    _, (parent,), children, stdout = selected
    header = next(line for line in stdout.splitlines() if line.startswith("| candidate |"))
    assert header.startswith("| candidate | digits | mean | images/s | p50 ms |"), header
    assert "texts/s" not in header and "tokens/s" not in header and "audio s/s" not in header
    # score [CI] (verdict) per candidate: the best, and the other tested against it (paired bootstrap)
    cells = re.findall(
        r"\| (\d\.\d{4}) \[(\d\.\d{4}), (\d\.\d{4})\] \((best|(?:tied|worse|better), p=[\d.e-]+)\)", stdout
    )
    assert len(cells) == 4, stdout  # two candidates x (digits, mean)
    assert all(float(low) < float(score) < float(high) for score, low, high, _ in cells)
    assert sum(verdict == "best" for *_, verdict in cells) == 2
    assert re.search(r"fastest: \S+ \([\d,]+ images/s\)", stdout), stdout
    winner = parent.data.tags["embsel.winner"]
    assert winner in CANDIDATES and parent.data.tags["embsel.recommendation"].startswith(winner)
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    frame = pd.read_csv(client.download_artifacts(parent.info.run_id, "leaderboard.csv")).set_index(
        "candidate"
    )
    rows = {}
    for child in children:
        name = child.data.tags["embsel.candidate"]
        row = frame.loc[name]
        assert row["digits"] == pytest.approx(child.data.metrics["main_score"], abs=1e-12)
        assert row["digits ci_low"] < row["digits"] < row["digits ci_high"]
        assert row["images_per_second"] == pytest.approx(child.data.metrics["efficiency/images_per_second"])
        assert np.isnan(row["texts_per_second"])
        assert bool(row["registrable"])  # fitted on the one dataset: its fit can be served
        rows[name] = (row["digits"], row["digits ci_low"], row["digits ci_high"], row["digits vs best"])
    print("leaderboard:", json.dumps(rows, indent=1, default=str))
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "decision.json")).read_text())
    assert decision["winner"] == winner
    plot = client.download_artifacts(parent.info.run_id, "plots/quality_vs_throughput.png")
    assert Path(plot).stat().st_size > 10_000


def test_the_winner_is_registered_as_the_champion(selected, workspace: Path) -> None:
    _, (parent,), _, stdout = selected
    winner = parent.data.tags["embsel.winner"]
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert version.run_id == parent.info.run_id and version.tags["embsel.candidate"] == winner
    assert parent.data.tags["embsel.registered_model"] == f"models:/{REGISTERED}@champion"
    assert f"registered {winner} as models:/{REGISTERED}@champion (version {version.version})" in stdout
    settings = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "champion/artifacts/settings.json")).read_text()
    )
    assert settings["backend"] == "media" and settings["kind"] == "image_features"
    assert settings["serving"]["modalities"] == ["image"] and settings["dim"] == 32


# The served model in a process of its own: no embsel import, only MLflow and what it logged.
PREDICT = """
import base64, json, sys
import mlflow, numpy as np
paths = json.loads(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
by_path = np.asarray(model.predict(paths))
encoded = [base64.b64encode(open(path, "rb").read()).decode() for path in paths]
by_bytes = np.asarray(model.predict(encoded, params={"modality": "image"}))
np.save(sys.argv[3], np.stack([by_path, by_bytes]))
print(json.dumps({"embsel_imported": any(m.startswith("embsel_mlflow") for m in sys.modules)}))
"""


def test_the_champion_answers_image_paths_and_bytes_in_a_fresh_process(selected, workspace: Path) -> None:
    _, (parent,), _, _ = selected
    winner = parent.data.tags["embsel.winner"]
    digits = workspace / "digits"
    test = pd.read_csv(digits / "test.csv")
    paths = [str(digits / path) for path in test["image"][:64]]
    elsewhere = workspace / "elsewhere"  # not the data's folder: the paths alone find the images
    elsewhere.mkdir(exist_ok=True)
    out = workspace / "served.npy"
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", PREDICT, json.dumps(paths), f"models:/{REGISTERED}@champion", str(out)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"embsel_imported": False}
    by_path, by_bytes = np.load(out)
    assert by_path.shape == (64, 32) and by_path.dtype == np.float32
    # what evaluation embedded: the winner's config, fitted on the digits' train images
    data = load_task_data(digits_config(digits))
    model = build_encoder(model_config(winner)).for_dataset(data)
    evaluated = model.encode(data.examples.test_texts[:64])
    difference = float(np.abs(by_path - evaluated).max())
    print(f"served {winner} vs evaluation: max abs difference {difference:.3g}")
    assert difference < 1e-5
    np.testing.assert_array_equal(by_bytes, by_path)  # base64 bytes decode to the same images


def test_the_measurement_key_follows_image_content_not_paths(workspace: Path) -> None:
    """A copy of the data elsewhere times the same sample; one changed image is a new sample."""
    from embsel_mlflow.selection.measurement_cache import measurement_key

    settings = EfficiencyConfig(sample_size=16, latency_queries=2)
    data = load_task_data(digits_config(workspace / "digits"))
    model = build_encoder(model_config("image_pixels_pca")).for_dataset(data)
    key = measurement_key(model, data, settings)
    copy = workspace / "digits_copy"
    shutil.copytree(workspace / "digits", copy, dirs_exist_ok=True)
    assert measurement_key(model, load_task_data(digits_config(copy)), settings) == key
    first = pd.read_csv(copy / "test.csv")["image"].iloc[0]
    (copy / first).write_bytes((copy / "images" / "0.png").read_bytes())  # another digit, same path
    assert measurement_key(model, load_task_data(digits_config(copy)), settings) != key


# --------------------------------------------------------------------------- audio: seconds per second


class _AudioTiming:
    """The one thing ``measure_efficiency`` asks a family: the items it times."""

    name = "toy_audio_timing"

    def timing_texts(self, examples: Any) -> tuple[list, list, None]:
        return list(examples), list(examples), None


class _LoudnessModel:
    """Mean and spread of each clip at 16 kHz (decoded by ``media.decode.load_audio``)."""

    embedding_dim = 2
    num_parameters = 0
    disk_size_bytes = None

    def encode(self, items: Any, *, role: str | None = None, show_progress: bool = False) -> np.ndarray:
        from embsel_mlflow.media.decode import load_audio

        clips = load_audio(list(items), sample_rate=16_000)
        return np.asarray([[clip.mean(), clip.std()] for clip in clips], dtype=np.float32)


def test_audio_efficiency_is_seconds_of_audio_per_second(tmp_path: Path) -> None:
    import soundfile

    from embsel_mlflow.config import MediaConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media.paths import make_media
    from embsel_mlflow.selection.efficiency import THROUGHPUT, measure_efficiency, throughput_units
    from embsel_mlflow.selection.leaderboard import EFFICIENCY_COLUMNS

    rng = np.random.default_rng(0)
    items = []
    for row, seconds in enumerate([0.5, 1.5, 2.0]):
        path = tmp_path / f"clip{row}.wav"
        soundfile.write(path, (0.1 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32), 16_000)
        items.append(
            make_media(path.name, "audio", root=tmp_path, row=row, where="clips", limits=MediaConfig())
        )
    assert throughput_units(items) == pytest.approx(4.0)
    data = TaskData("clips", "toy_audio_timing", "test", items, family=_AudioTiming())
    efficiency = measure_efficiency(
        _LoudnessModel(), data, EfficiencyConfig(sample_size=3, latency_queries=2)
    )
    metrics = efficiency.metrics()
    assert metrics["efficiency/audio_seconds_per_second"] > 4.0  # more than real time: 4 s of sound per pass
    assert {"efficiency/texts_per_second", "efficiency/images_per_second"}.isdisjoint(metrics)
    assert THROUGHPUT["audio"] == ("audio_seconds_per_second", "audio s/s")
    assert EFFICIENCY_COLUMNS["audio_seconds_per_second"] == "audio s/s"
