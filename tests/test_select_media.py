"""`embsel select` over image candidates: real digits, a real sqlite store, Hydra through the CLI.

Two image candidates (``tests/image_toys.py``: raw pixels, and a pixel PCA fitted per dataset,
registered here until the real ``image_features`` kind and ``image_classification`` family replace
them) are ranked on the digits: one parent run, a FINISHED child per candidate, the leaderboard
with bootstrap CIs and the paired test, and efficiency in images per second. Audio efficiency
is in seconds of audio per second, measured here on real WAV files.

``profile.allow_modality_mismatch=true``: the modality guard still refuses every media column
until it routes by the candidate's kind (the data helper's change); then drop it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates import KINDS, BuildContext
from embsel_mlflow.config import DataConfig, EfficiencyConfig, ModelConfig, TableConfig
from embsel_mlflow.families import load_task_data, register_family, unregister_family
from tests.cli_harness import invoke
from tests.image_toys import PIXEL_PCA, PIXELS, TOY_FAMILY, toy_family, toy_kinds, write_conf, write_digits

GUARD = "profile.allow_modality_mismatch=true"  # until the modality guard routes by kind


@pytest.fixture(scope="module")
def registered() -> Iterator[None]:
    register_family(toy_family())
    with pytest.MonkeyPatch.context() as patch:
        for name, kind in toy_kinds().items():
            patch.setitem(KINDS, name, kind)
        yield
    unregister_family(TOY_FAMILY)


@pytest.fixture(scope="module")
def workspace(registered: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("select_media")
    write_conf(cwd / "conf", write_digits(cwd / "digits"))
    return cwd


@pytest.fixture(scope="module")
def selected(workspace: Path) -> tuple[Any, Any, list, str]:
    result = invoke(
        "select",
        f"hydra.searchpath=[file://{workspace / 'conf'}]",
        f"tracking.uri=sqlite:///{workspace / 'mlflow.db'}",
        f"cache.dir={workspace / 'cache'}",
        f"candidates=[{PIXELS},{PIXEL_PCA}]",
        "datasets=[toy_digits]",
        "evaluation.show_progress=false",
        "select.resamples=300",
        "select.efficiency.sample_size=64",
        "select.efficiency.latency_queries=8",
        GUARD,
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
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == sorted(f"{n}@toy_digits" for n in (PIXELS, PIXEL_PCA))
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.metrics["test/accuracy"] > 0.85  # MTEB's protocol on real digits
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
    assert dims == {PIXELS: 64.0, PIXEL_PCA: 16.0}


def test_the_leaderboard_has_cis_paired_tests_and_images_per_second(selected, workspace: Path) -> None:
    _, (parent,), children, stdout = selected
    header = next(line for line in stdout.splitlines() if line.startswith("| candidate |"))
    assert header.startswith("| candidate | toy_digits | mean | images/s | p50 ms |"), header
    assert "texts/s" not in header and "tokens/s" not in header and "audio s/s" not in header
    # score [CI] (verdict) per candidate: the best, and the other tested against it (paired bootstrap)
    cells = re.findall(
        r"\| (\d\.\d{4}) \[(\d\.\d{4}), (\d\.\d{4})\] \((best|(?:tied|worse|better), p=[\d.e-]+)\)", stdout
    )
    assert len(cells) == 4, stdout  # two candidates x (toy_digits, mean)
    assert all(float(low) <= float(score) <= float(high) for score, low, high, _ in cells)
    assert sum(verdict == "best" for *_, verdict in cells) == 2
    assert re.search(r"fastest: \S+ \([\d,]+ images/s\)", stdout), stdout
    winner = parent.data.tags["embsel.winner"]
    assert winner in (PIXELS, PIXEL_PCA) and parent.data.tags["embsel.recommendation"].startswith(winner)
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    frame = pd.read_csv(client.download_artifacts(parent.info.run_id, "leaderboard.csv")).set_index(
        "candidate"
    )
    for child in children:
        name = child.data.tags["embsel.candidate"]
        assert frame.loc[name, "toy_digits"] == pytest.approx(child.data.metrics["main_score"], abs=1e-12)
        assert frame.loc[name, "images_per_second"] == pytest.approx(
            child.data.metrics["efficiency/images_per_second"]
        )
        assert np.isnan(frame.loc[name, "texts_per_second"])
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "decision.json")).read_text())
    assert decision["winner"] == winner
    plot = client.download_artifacts(parent.info.run_id, "plots/quality_vs_throughput.png")
    assert Path(plot).stat().st_size > 10_000


def _digits_config(root: Path) -> DataConfig:
    return DataConfig(
        name="toy_digits",
        task=TOY_FAMILY,
        root=str(root),
        splits={"train": TableConfig(path="train.csv"), "test": TableConfig(path="test.csv")},
    )


def test_the_measurement_key_follows_image_content_not_paths(workspace: Path) -> None:
    """A copy of the data elsewhere times the same sample; one changed image is a new sample."""
    from embsel_mlflow.selection.measurement_cache import measurement_key

    settings = EfficiencyConfig(sample_size=16, latency_queries=2)
    model = toy_kinds()[PIXELS].build(
        ModelConfig(name=PIXELS, name_or_path=PIXELS, kind=PIXELS), BuildContext()
    )
    key = measurement_key(model, load_task_data(_digits_config(workspace / "digits")), settings)
    copy = workspace / "digits_copy"
    shutil.copytree(workspace / "digits", copy, dirs_exist_ok=True)
    assert measurement_key(model, load_task_data(_digits_config(copy)), settings) == key
    first = pd.read_csv(copy / "test.csv")["image"].iloc[0]
    (copy / first).write_bytes((copy / "images" / "0.png").read_bytes())  # another digit, same path
    assert measurement_key(model, load_task_data(_digits_config(copy)), settings) != key


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
