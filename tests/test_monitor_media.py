"""`embsel monitor` on image windows: real digits, a real sqlite store, Hydra through the CLI.

The reference is the digits' test split; the windows are the held-out digits (plain), the same
digits rotated 90 degrees, and the same digits under strong Gaussian noise. The monitored model
is a pixel PCA fitted per dataset (``tests/image_toys.py``, registered here until the real
``image_features`` kind and ``image_classification`` family replace it): monitor fits it on the
reference data once and embeds the reference, every window and every quality check with it.

``profile.allow_modality_mismatch=true``: the modality guard still refuses every media column
until it routes by the candidate's kind (the data helper's change); then drop it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates import KINDS
from embsel_mlflow.families import get_family, register_family, unregister_family
from embsel_mlflow.jobs import monitor
from tests.cli_harness import assert_one_line_error, invoke
from tests.image_toys import (
    FITS,
    PIXEL_PCA,
    TOY_FAMILY,
    WINDOWS,
    toy_family,
    toy_kinds,
    write_conf,
    write_digits,
)

GUARD = "profile.allow_modality_mismatch=true"  # until the modality guard routes by kind


@pytest.fixture(scope="module")
def registered() -> Iterator[None]:
    """The toy image family and kinds, for this module only."""
    register_family(toy_family())
    with pytest.MonkeyPatch.context() as patch:
        for name, kind in toy_kinds().items():
            patch.setitem(KINDS, name, kind)
        yield
    unregister_family(TOY_FAMILY)


@pytest.fixture(scope="module")
def workspace(registered: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("monitor_media")
    write_conf(cwd / "conf", write_digits(cwd / "digits"))
    return cwd


def _args(cwd: Path, *extra: str, db: str = "mlflow.db") -> list[str]:
    return [
        f"hydra.searchpath=[file://{cwd / 'conf'}]",
        f"tracking.uri=sqlite:///{cwd / db}",
        f"cache.dir={cwd / 'cache'}",
        f"model={PIXEL_PCA}",
        "data=toy_digits",
        GUARD,
        *extra,
    ]


def _runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _window_run(cwd: Path, name: str):
    (run,) = [r for r in _runs(cwd) if r.data.tags.get("embsel.monitor.window") == name]
    return run


@pytest.fixture(scope="module")
def monitored(workspace: Path) -> dict[str, tuple[int, str, int]]:
    """One invocation per window, in this order: (exit code, stdout, PCA fits during it)."""
    outcomes = {}
    for name in ("plain", "rotated", "noised"):
        fits_before = len(FITS)
        result = invoke(
            "monitor", *_args(workspace, f"current.paths=[digits/windows/{name}.csv]"), cwd=workspace
        )
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        outcomes[name] = (result.returncode, result.stdout, len(FITS) - fits_before)
    return outcomes


def test_plain_digits_pass_and_rotated_or_noised_digits_alert(monitored, workspace: Path) -> None:
    codes = {name: code for name, (code, _, _) in monitored.items()}
    assert codes == {"plain": 0, "rotated": 3, "noised": 3}, {n: o[1][-1500:] for n, o in monitored.items()}
    p_values = {}
    for name in ("plain", "rotated", "noised"):
        run = _window_run(workspace, name)
        assert run.info.status == "FINISHED"
        metrics, tags = run.data.metrics, run.data.tags
        p_values[name] = {
            key.split("/")[1]: value
            for key, value in metrics.items()
            if key.startswith("drift/") and key.endswith("/p_value")
        }
        assert metrics["window/images"] == 300.0 and "window/texts" not in metrics
        assert not any(key.startswith("text/") for key in metrics)  # no token or language signals
        assert metrics["drift/drifted"] == (0.0 if name == "plain" else 1.0)
        # a quality drop outranks drift in the status: both alert
        assert tags["embsel.monitor.status"] in (("ok",) if name == "plain" else ("drift", "quality_drop"))
    print("drift p-values:", json.dumps(p_values, indent=1))
    assert len(p_values["plain"]) >= 4  # every default method ran
    assert min(p_values["plain"].values()) > 0.05 / len(p_values["plain"])  # Bonferroni over methods
    for name in ("rotated", "noised"):  # drifted by most methods, decisively by some
        assert min(p_values[name].values()) < 1e-3, p_values[name]
        assert sum(p < 0.05 for p in p_values[name].values()) >= len(p_values[name]) - 1, p_values[name]
    assert "[step 0, 300 images]: OK" in monitored["plain"][1]


def test_the_fitted_kind_is_fitted_once_on_the_reference_and_embeds_every_window(
    monitored, workspace: Path
) -> None:
    # one fit per invocation (the quality check and the baseline reuse it), on the 900 train images
    # (the classification family's fit inputs), and the same fit every time
    assert [fits for _, _, fits in monitored.values()] == [1, 1, 1]
    fits = FITS[-3:]
    assert {(name, count) for name, count, _ in fits} == {(PIXEL_PCA, 900)} and len(
        {k for *_, k in fits}
    ) == 1
    (parent,) = [r for r in _runs(workspace) if r.data.tags.get(monitor.ROLE_TAG) == monitor.PARENT]
    assert parent.data.tags["embsel.monitor.fitted_on"] == "toy_digits [test]"
    assert parent.data.tags["embsel.model_sha256"] == fits[0][2]  # the fitted model's identity
    assert {r.info.status for r in _runs(workspace)} == {"FINISHED"}


def test_labelled_image_windows_are_rescored_with_the_task(monitored, workspace: Path) -> None:
    plain, rotated = _window_run(workspace, "plain"), _window_run(workspace, "rotated")
    for run in (plain, rotated):
        assert run.data.metrics["quality/main_score"] == pytest.approx(run.data.metrics["test/accuracy"])
        assert run.data.metrics["images_encoded"] > 300 and "texts_encoded" not in run.data.metrics
    assert plain.data.metrics["quality/main_score"] > 0.8  # the held-out digits score as the test split
    assert rotated.data.metrics["quality/main_score"] < 0.5  # the classifier never saw rotated digits
    assert rotated.data.tags["quality.drop"] == "true"
    (baseline,) = [r for r in _runs(workspace) if r.data.tags.get(monitor.ROLE_TAG) == monitor.BASELINE]
    assert baseline.data.metrics["main_score"] > 0.8
    scores = {name: _window_run(workspace, name).data.metrics["quality/main_score"] for name in WINDOWS}
    print("accuracy: baseline", baseline.data.metrics["main_score"], "windows", scores)


def test_the_most_shifted_images_are_named_by_their_files(monitored, workspace: Path) -> None:
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    run = _window_run(workspace, "rotated")
    shifted = json.loads(
        Path(client.download_artifacts(run.info.run_id, "monitor/shifted_texts.json")).read_text()
    )
    rows = shifted["shifted"]
    assert rows and all(row["text"].startswith("images_rotated/") for row in rows)
    assert all(n["text"].startswith("images/") for row in rows for n in row["neighbours"])


def test_a_window_digest_follows_the_image_content(workspace: Path) -> None:
    """The same csv naming rewritten images is a new window (the content hash is in the digest)."""
    from embsel_mlflow.config import DataConfig, TableConfig, WindowFilesConfig
    from embsel_mlflow.monitoring.windows import file_windows

    digits = workspace / "digits"
    reference = DataConfig(
        name="toy_digits", task=TOY_FAMILY, root=str(digits),
        splits={"train": TableConfig(path="train.csv"), "test": TableConfig(path="test.csv")},
    )  # fmt: skip
    window_csv = workspace / "copied.csv"
    frame = pd.read_csv(digits / "windows" / "plain.csv").head(20)
    frame.to_csv(window_csv, index=False)
    files = WindowFilesConfig(paths=[str(window_csv)])
    (first,) = file_windows(files, reference, workspace / "judged")
    assert len(first.items) == 20 and all(item.modality == "image" for item in first.items)
    target = digits / frame["image"].iloc[0]
    original = target.read_bytes()
    try:
        target.write_bytes((digits / frame["image"].iloc[1]).read_bytes())
        (second,) = file_windows(files, reference, workspace / "judged")
    finally:
        target.write_bytes(original)
    assert second.digest != first.digest


def test_the_window_columns_come_from_the_family(registered: None) -> None:
    from embsel_mlflow.monitoring.windows import window_roles

    assert window_roles(get_family(TOY_FAMILY)) == ("image",)
    assert window_roles(get_family("classification")) == ("text",)
    assert window_roles(get_family("sts")) == ("s1", "s2")
    assert window_roles(get_family("pair_classification")) == ("s1", "s2")
    assert window_roles(get_family("retrieval")) == ("text",)  # its queries, not the corpus titles


def test_bad_image_windows_are_one_line_exit_2(workspace: Path) -> None:
    from functools import partial

    args = partial(_args, db="bad.db")  # a store of its own: failed invocations stay out of the others
    missing = workspace / "missing.csv"
    pd.DataFrame({"image": ["images/0.png"] * 5 + ["images/no_such.png"], "label": ["0"] * 6}).to_csv(
        missing, index=False
    )
    result = invoke("monitor", *args(workspace, f"current.paths=[{missing}]"), cwd=workspace)
    message = assert_one_line_error(result, "no_such.png")
    assert "row 6" in message
    texts = workspace / "texts.csv"
    pd.DataFrame({"text": [f"a handwritten digit {i}" for i in range(10)]}).to_csv(texts, index=False)
    result = invoke("monitor", *args(workspace, f"current.paths=[{texts}]"), cwd=workspace)
    assert_one_line_error(result, "no image path column")
    outside = workspace / "outside.csv"
    pd.DataFrame({"image": ["../digits/images/1.png", "../../etc/passwd"], "label": ["1", "2"]}).to_csv(
        outside, index=False
    )
    result = invoke("monitor", *args(workspace, f"current.paths=[{outside}]"), cwd=workspace)
    assert_one_line_error(result, "outside data.root")


# --------------------------------------------------------------------------- audio windows


class _Loudness:
    """Level and spread of each clip at 16 kHz (decoded by ``media.decode.load_audio``), in dB."""

    def encode(self, items: Any, *, role: str | None = None, show_progress: bool = False) -> np.ndarray:
        from embsel_mlflow.media.decode import load_audio

        clips = load_audio(list(items), sample_rate=16_000)
        return np.asarray(
            [[20 * np.log10(np.abs(c).mean() + 1e-9), 20 * np.log10(c.std() + 1e-9)] for c in clips],
            dtype=np.float32,
        )


def _clips(directory: Path, name: str, count: int, amplitude: float, seed: int) -> pd.DataFrame:
    import soundfile

    rng = np.random.default_rng(seed)
    (directory / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        seconds = rng.uniform(0.5, 1.5)
        t = np.arange(int(16_000 * seconds)) / 16_000
        wave = amplitude * rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * rng.uniform(200, 800) * t)
        soundfile.write(directory / name / f"{i}.wav", wave.astype(np.float32), 16_000)
        paths.append(f"{name}/{i}.wav")
    return pd.DataFrame({"audio": paths})


def test_audio_windows_are_read_checked_and_tested_for_drift(tmp_path: Path) -> None:
    """A window of louder clips drifts, one of the same kind does not; no text signals for audio."""
    from embsel_mlflow.config import DataConfig, MonitorConfig, ProfileConfig, TableConfig
    from embsel_mlflow.errors import DataError
    from embsel_mlflow.monitoring.runner import monitor_window, prepare_reference
    from embsel_mlflow.monitoring.windows import frame_media
    from embsel_mlflow.text.tokens import CandidateTokenizer

    reference_cfg = DataConfig(name="clips", task="audio_classification", root=str(tmp_path))

    def items(frame: pd.DataFrame, where: str) -> list:
        return frame_media(frame, where, TableConfig(), reference_cfg, "audio", where)

    reference = items(_clips(tmp_path, "reference", 40, 0.1, 0), "reference.csv")
    same = items(_clips(tmp_path, "same", 30, 0.1, 1), "same.csv")
    louder = items(_clips(tmp_path, "louder", 30, 0.6, 2), "louder.csv")
    assert all(item.modality == "audio" and item.duration_s >= 0.5 for item in reference)
    cfg, profile = MonitorConfig(), ProfileConfig()
    cfg.drift.permutations = 300
    tokenizer = CandidateTokenizer("words")  # would give text signals to texts: never to audio
    ref = prepare_reference(reference, _Loudness(), tokenizer=tokenizer, cfg=cfg, profile=profile)
    assert ref.text_profile is None and ref.modality == "audio"
    quiet = monitor_window(ref, same, _Loudness(), cfg=cfg, profile=profile, tokenizer=tokenizer, name="same")
    loud = monitor_window(
        ref, louder, _Loudness(), cfg=cfg, profile=profile, tokenizer=tokenizer, name="louder"
    )
    assert not quiet.drifted and loud.drifted and quiet.text is None
    assert loud.metrics()["window/audio_clips"] == 30.0 and "window/texts" not in loud.metrics()
    assert loud.shifted[0]["text"].startswith("louder/")  # the file, for a person to listen to
    with pytest.raises(DataError, match=r"holds texts but the reference holds audio clips"):
        monitor_window(ref, ["a text"] * 10, _Loudness(), cfg=cfg, profile=profile, name="texts")
