"""`embsel monitor` on image windows of the digits: drift, quality, and the registered champion.

As a new user would run it, through the CLI (Hydra, a real sqlite store, offline): the digits
written by ``embsel demo-data digits`` and ``conf/data/digits.yaml`` (``image_classification``).
The reference is the digits' test split; the windows are the held-out digits (plain), the same
digits rotated 90 degrees, and the same digits under strong Gaussian noise (``windows/*.csv``).

Two ways to name the monitored model, both checked on every window (issue 20's drift bar: rotated
or noised exits 3, plain exits 0):

- ``model=image_pixels_pca``: the ``image_features`` kind, fitted per dataset, so monitor fits
  it on the reference data and embeds the reference, every window and every quality check with it;
- ``model_uri=models:/NAME@champion``: the fit a ``select.register`` run registered. It is
  never refitted on the reference; to tell the two apart, it was fitted on a smaller train split.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.families import get_family
from embsel_mlflow.jobs import monitor
from tests.cli_harness import assert_one_line_error, invoke
from tests.test_select_media import digits_config

WINDOWS = ("plain", "rotated", "noised")
EXPECTED = {"plain": 0, "rotated": 3, "noised": 3}
REGISTERED = "digits_pixels"
CHAMPION_TRAIN = 300  # the registered fit's train images (monitor's reference trains on 900)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("monitor_media")
    result = invoke("demo-data", "digits", "digits", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    train = pd.read_csv(cwd / "digits" / "train.csv")
    train.head(CHAMPION_TRAIN).to_csv(cwd / "digits" / "train_small.csv", index=False)
    return cwd


def _args(cwd: Path, *extra: str, db: str = "mlflow.db", model: str = "model=image_pixels_pca") -> list[str]:
    return [
        f"tracking.uri=sqlite:///{cwd / db}",
        f"cache.dir={cwd / 'cache'}",
        model,
        "data=digits",
        f"data.root={cwd / 'digits'}",
        *extra,
    ]


def _runs(cwd: Path, db: str = "mlflow.db") -> list:
    client = MlflowClient(f"sqlite:///{cwd / db}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _window_run(cwd: Path, name: str, db: str = "mlflow.db"):
    (run,) = [r for r in _runs(cwd, db) if r.data.tags.get("embsel.monitor.window") == name]
    return run


def _parent(cwd: Path, db: str = "mlflow.db"):
    (parent,) = [r for r in _runs(cwd, db) if r.data.tags.get(monitor.ROLE_TAG) == monitor.PARENT]
    return parent


def _monitor_windows(cwd: Path, *extra: str, db: str, model: str) -> dict[str, tuple[int, str]]:
    """One invocation per window, in this order: (exit code, stdout)."""
    outcomes = {}
    for name in WINDOWS:
        result = invoke(
            "monitor",
            *_args(cwd, f"current.paths=[digits/windows/{name}.csv]", *extra, db=db, model=model),
            cwd=cwd,
        )
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        outcomes[name] = (result.returncode, result.stdout)
    return outcomes


@pytest.fixture(scope="module")
def monitored(workspace: Path) -> dict[str, tuple[int, str]]:
    return _monitor_windows(workspace, db="mlflow.db", model="model=image_pixels_pca")


@pytest.fixture(scope="module")
def champion(workspace: Path) -> Path:
    """``embsel select ... select.register`` of the pixel baseline, fitted on 300 train images;
    returns the registered fit's file."""
    result = invoke(
        "select",
        f"tracking.uri=sqlite:///{workspace / 'champion.db'}",
        f"cache.dir={workspace / 'cache_champion'}",  # its fit is not among monitor's kept fits
        "candidates=[image_pixels_pca]",
        "datasets=[digits]",
        f"datasets.digits.root={workspace / 'digits'}",
        "datasets.digits.splits.train.path=train_small.csv",
        f"select.register={REGISTERED}",
        "evaluation.show_progress=false",
        "select.resamples=100",
        "select.efficiency.sample_size=16",
        "select.efficiency.latency_queries=2",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{workspace / 'champion.db'}")
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    fit = client.download_artifacts(
        version.run_id, "champion/artifacts/weights/image_features.npz", str(workspace / "registered")
    )
    return Path(fit)


@pytest.fixture(scope="module")
def monitored_champion(workspace: Path, champion: Path) -> dict[str, tuple[int, str]]:
    return _monitor_windows(workspace, db="champion.db", model=f"model_uri=models:/{REGISTERED}@champion")


def _p_values(run) -> dict[str, float]:
    return {
        key.split("/")[1]: value
        for key, value in run.data.metrics.items()
        if key.startswith("drift/") and key.endswith("/p_value")
    }


def _check_drift(outcomes: dict[str, tuple[int, str]], cwd: Path, db: str) -> dict[str, dict[str, float]]:
    codes = {name: code for name, (code, _) in outcomes.items()}
    assert codes == EXPECTED, {n: o[1][-1500:] for n, o in outcomes.items()}
    p_values = {}
    for name in WINDOWS:
        run = _window_run(cwd, name, db)
        assert run.info.status == "FINISHED"
        metrics, tags = run.data.metrics, run.data.tags
        p_values[name] = _p_values(run)
        assert metrics["window/images"] == 300.0 and "window/texts" not in metrics
        assert not any(key.startswith("text/") for key in metrics)  # no token or language signals
        assert metrics["drift/drifted"] == (0.0 if name == "plain" else 1.0)
        # a quality drop outranks drift in the status: both alert
        assert tags["embsel.monitor.status"] in (("ok",) if name == "plain" else ("drift", "quality_drop"))
    assert len(p_values["plain"]) >= 4  # every default method ran
    assert min(p_values["plain"].values()) > 0.05 / len(p_values["plain"])  # Bonferroni over methods
    for name in ("rotated", "noised"):  # drifted by most methods, decisively by some
        assert min(p_values[name].values()) < 1e-3, p_values[name]
        assert sum(p < 0.05 for p in p_values[name].values()) >= len(p_values[name]) - 1, p_values[name]
    assert "[step 0, 300 images]: OK" in outcomes["plain"][1]
    assert {r.info.status for r in _runs(cwd, db)} == {"FINISHED"}
    return p_values


def test_plain_digits_pass_and_rotated_or_noised_digits_alert(monitored, workspace: Path) -> None:
    p_values = _check_drift(monitored, workspace, "mlflow.db")
    print("model=image_pixels_pca drift p-values:", json.dumps(p_values, indent=1))


def test_the_registered_champion_alerts_on_the_same_windows(monitored_champion, workspace: Path) -> None:
    p_values = _check_drift(monitored_champion, workspace, "champion.db")
    print(f"model_uri=models:/{REGISTERED}@champion drift p-values:", json.dumps(p_values, indent=1))


def test_the_registered_fit_is_not_refitted_on_the_reference(
    monitored, monitored_champion, champion: Path, workspace: Path
) -> None:
    parent = _parent(workspace, "champion.db")
    tags = parent.data.tags
    assert tags["embsel.monitor.model_uri"] == f"models:/{REGISTERED}@champion"
    # the model that embedded everything is the registered file itself, not a fit on the reference
    assert tags["embsel.model_sha256"] == hashlib.sha256(champion.read_bytes()).hexdigest()
    assert "embsel.monitor.fitted_on" not in tags
    # ... and a fit on the reference (model=image_pixels_pca: 900 train images) is another model
    fitted = _parent(workspace).data.tags
    assert fitted["embsel.monitor.fitted_on"] == "digits [test]"
    assert fitted["embsel.model_sha256"] != tags["embsel.model_sha256"]
    # the quality baseline is what the registering select measured for the champion
    assert tags[monitor.BASELINE_TAG].startswith("image_pixels_pca/digits=")


def test_the_fitted_kind_is_fitted_on_the_reference_once_and_embeds_every_window(
    monitored, workspace: Path
) -> None:
    parent = _parent(workspace)
    assert parent.data.tags["embsel.monitor.fitted_on"] == "digits [test]"
    # the three invocations fitted the same images with the same settings: one kept fit
    assert len(list((workspace / "cache" / "models" / "image_features").glob("*.npz"))) == 1
    # every window's quality check was embedded by that fit (evaluate's tags on the window run)
    windows = [r for r in _runs(workspace) if r.data.tags.get(monitor.ROLE_TAG) == monitor.WINDOW]
    assert len(windows) == 3
    assert {r.data.tags["embsel.model_sha256"] for r in windows} == {parent.data.tags["embsel.model_sha256"]}


def test_labelled_image_windows_are_rescored_with_the_task(monitored, workspace: Path) -> None:
    plain, rotated = _window_run(workspace, "plain"), _window_run(workspace, "rotated")
    for run in (plain, rotated):
        assert run.data.metrics["quality/main_score"] == pytest.approx(run.data.metrics["test/accuracy"])
        assert run.data.metrics["images_encoded"] > 300 and "texts_encoded" not in run.data.metrics
    assert plain.data.metrics["quality/main_score"] > 0.8  # the held-out digits score as the test split
    assert rotated.data.metrics["quality/main_score"] < 0.5  # the classifier never saw rotated digits
    assert rotated.data.tags["quality.drop"] == "true"
    (baseline,) = [r for r in _runs(workspace) if r.data.tags.get(monitor.ROLE_TAG) == monitor.BASELINE]
    assert baseline.data.metrics["main_score"] > 0.85
    scores = {name: _window_run(workspace, name).data.metrics["quality/main_score"] for name in WINDOWS}
    print("accuracy: baseline", baseline.data.metrics["main_score"], "windows", scores)


def test_the_exit_code_reaches_the_shell(workspace: Path, run_cli) -> None:
    """A real process (``python -m embsel_mlflow``): two windows in one invocation, one alerting: 3."""
    windows = workspace / "digits" / "windows"
    result = run_cli(
        "monitor",
        *_args(workspace, f"current.paths=[{windows / 'plain.csv'},{windows / 'noised.csv'}]", db="shell.db"),
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "window plain [step 0, 300 images]: OK" in result.stdout
    assert re.search(r"window noised \[step 1, 300 images\]: (DRIFT|QUALITY_DROP)", result.stdout), (
        result.stdout
    )
    assert "monitor: 1 of 2 window(s) alerted" in result.stdout


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
    from embsel_mlflow.config import WindowFilesConfig
    from embsel_mlflow.monitoring.windows import file_windows

    digits = workspace / "digits"
    reference = digits_config(digits)
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


def test_the_window_columns_come_from_the_family() -> None:
    from embsel_mlflow.monitoring.windows import window_roles

    assert window_roles(get_family("image_classification")) == ("image",)
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
