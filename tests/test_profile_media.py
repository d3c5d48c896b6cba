"""`embsel profile` on images and sound, and the modality guard that routes candidates.

Through the real command (Hydra, a real sqlite MLflow store): the digits demo set (real 8x8
scans, PNG) with the real ``image_classification`` family and ``conf/data/digits.yaml``, and a
small audio set written here with soundfile (a tone, a silent clip, a clipped one, a stereo
44.1 kHz one, and broken files). One kind is registered for these tests only, a plug-in kind that
takes images, to show that the guard accepts and names kinds from outside the package.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from mlflow.tracking import MlflowClient
from PIL import Image

from embsel_mlflow.candidates import KINDS, CandidateKind
from embsel_mlflow.config import ModelConfig, ProfileConfig
from embsel_mlflow.data.task_data import TableInfo, TaskData
from embsel_mlflow.media.demo import write_digits
from embsel_mlflow.profiling.columns import ColumnKind
from embsel_mlflow.profiling.modality import ModalityMismatch, refuse_modality_mismatch
from tests.cli_harness import assert_one_line_error, invoke

IMAGE_TASK = "image_classification"
PLUGIN_KIND = "test_pixels"
# The brief's own example: what a text model on the digits gets
REFUSED = (
    "embeds text only; task image_classification embeds image: use a kind that does: clip, image_features"
)


class PixelsKind(CandidateKind):
    """A plug-in kind that takes images (never built here: the guard reads its modalities)."""

    name = PLUGIN_KIND
    modalities = frozenset({"image"})


@pytest.fixture
def plugin_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, PLUGIN_KIND, PixelsKind())


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    write_digits(root)
    return root


def _store(cwd: Path) -> str:
    return f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"


def _profile_run(cwd: Path, *args: str):
    result = invoke("profile", *args, "candidates=[]", "profile.show_progress=false", _store(cwd), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(_store(cwd).split("=", 1)[1])
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    profile = json.loads(
        Path(client.download_artifacts(run.info.run_id, "profile.json", str(cwd))).read_text()
    )
    report = Path(client.download_artifacts(run.info.run_id, "profile.html", str(cwd))).read_text()
    return result, run, profile, report


def _column(profile: dict, key: str) -> dict:
    return next(c for c in profile["columns"] if f"{c['table']}/{c['column']}" == key)


# --- images ----------------------------------------------------------------------------------------


def test_profile_of_the_digits_reports_sizes_formats_modes_and_bad_files(
    digits: Path, tmp_path: Path
) -> None:
    rows = pd.read_csv(digits / "windows" / "plain.csv", dtype=str)
    Image.new("RGB", (40, 30), "red").save(digits / "wide.jpg")
    (digits / "note.png").write_text("not an image")
    data = (digits / "images" / "0.png").read_bytes()
    (digits / "cut.png").write_bytes(data[: len(data) - 20])  # the end chunk and checksum gone
    extra = pd.DataFrame(
        {"image": ["wide.jpg", "note.png", "cut.png", "images/missing.png", "../outside.png"], "label": "x"}
    )
    pd.concat([rows, extra]).to_csv(digits / "mixed.csv", index=False)

    result, run, profile, report = _profile_run(tmp_path, "table.path=mixed.csv", f"table_root={digits}")
    image = _column(profile, "table/image")
    assert image["type"]["kind"] == ColumnKind.image_path
    assert image["text"] is None  # never text statistics on paths
    media = image["media"]
    assert (media["rows"], media["readable"]) == (305, 302)
    assert media["formats"] == {"PNG": 301, "JPEG": 1}
    assert media["modes"] == {"L": 301, "RGB": 1}
    assert media["sizes"] == {"8x8": 301, "40x30": 1}
    assert (media["width"]["min"], media["width"]["max"], media["height"]["max"]) == (8, 40, 30)
    assert media["problems"] == {"missing": 1, "outside_root": 1, "unreadable": 1, "corrupt": 1}
    assert media["examples"]["corrupt"] == ["cut.png"] and media["checked"] == 302
    metrics = run.data.metrics
    assert metrics["profile/table/image/width_median"] == 8.0
    assert metrics["profile/table/image/bad_media_rate"] == pytest.approx(4 / 305)
    assert not [key for key in metrics if key.startswith("profile/table/image/") and "chars" in key]
    tags = run.data.tags
    assert (
        "4 of 305 image file(s) in `table/image` cannot be used"
        in tags["embsel.profile.finding.error.bad_media"]
    )
    assert (
        "formats PNG 99.7%, JPEG 0.3%; modes L 99.7%, RGB 0.3%"
        in tags["embsel.profile.finding.info.media_summary"]
    )
    assert "table/image (image)" in report and "most common sizes" in report
    assert "[error] 4 of 305 image file(s)" in result.stdout


def test_a_datasets_image_column_in_parquet_is_profiled_as_images(tmp_path: Path) -> None:
    import datasets

    cells = []
    for size in (8, 16, 16):
        buffer = io.BytesIO()
        Image.new("L", (size, size), 128).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": f"{size}.png"})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": cells, "label": ["a", "b", "c"]}, features=features).to_parquet(
        str(tmp_path / "images.parquet")
    )
    _, _, profile, _ = _profile_run(tmp_path, "table.path=images.parquet")
    image = _column(profile, "table/image")
    assert image["type"]["kind"] == ColumnKind.image_path
    assert "3 with inline bytes" in image["type"]["evidence"]
    assert image["media"]["sizes"] == {"16x16": 2, "8x8": 1} and image["media"]["problems"] == {}


def test_profile_of_the_digits_dataset_config_has_no_modality_mismatch(digits: Path, tmp_path: Path) -> None:
    _, run, profile, _ = _profile_run(tmp_path, "data=digits", f"data.root={digits}")
    codes = {f["code"] for f in profile["findings"]}
    assert "modality_mismatch" not in codes and "bad_media" not in codes
    assert "media_summary" in codes
    assert _column(profile, "test/image")["media"]["readable"] == 597
    assert run.data.metrics["profile/train/image/readable"] == 900.0
    assert run.data.metrics["profile/test/image/height_median"] == 8.0
    assert "profile/test/image/height_max" not in run.data.metrics  # a detail: in profile.json
    assert _column(profile, "test/image")["media"]["height"]["max"] == 8


def test_an_image_in_two_splits_is_leakage_found_by_content_not_by_caption(
    digits: Path, tmp_path: Path
) -> None:
    """Captions repeat (ten digits, one caption each): not a finding for an image task. The same image
    bytes in test and train are, whatever the file is called."""
    root = tmp_path / "leaky"
    root.mkdir()
    shutil.copytree(digits / "images", root / "images")  # a copy: a symlink out of data.root is refused
    shutil.copy(digits / "train.csv", root / "train.csv")
    train = pd.read_csv(digits / "train.csv", dtype=str)
    (root / "copies").mkdir()
    for index, row in train.head(4).iterrows():  # renamed copies of four train images
        (root / "copies" / f"copy{index}.png").write_bytes((digits / row["image"]).read_bytes())
    copies = train.head(4).assign(image=[f"copies/copy{i}.png" for i in range(4)])
    pd.concat([pd.read_csv(digits / "test.csv", dtype=str), copies]).to_csv(root / "test.csv", index=False)
    _, run, profile, _ = _profile_run(tmp_path, "data=digits", f"data.root={root}")
    leaks = [f for f in profile["findings"] if f["code"] == "split_leakage"]
    assert [f["message"] for f in leaks] == [
        "4 test row(s) have an image also in train (leakage: scores are optimistic)"
    ]
    assert profile["checks"]["leakage"] == {"test_in_train": 4}
    assert not [f for f in profile["findings"] if f["code"] in ("exact_duplicates", "near_duplicates")]
    assert run.data.tags["embsel.profile.warn"] == "1"


def test_the_same_sentence_read_by_two_speakers_is_no_label_conflict(tmp_path: Path) -> None:
    _audio_set(tmp_path / "sounds")
    rows = pd.read_csv(tmp_path / "sounds" / "clips.csv")
    tones = rows.head(6).assign(text="the same sentence")  # six different tones, three speakers
    tones.to_csv(tmp_path / "sounds" / "speakers.csv", index=False)
    _, _, profile, _ = _profile_run(
        tmp_path,
        "data=spoken_speakers",
        f"data.root={tmp_path / 'sounds'}",
        "data.splits.test.path=speakers.csv",
    )
    assert profile["checks"]["labels/test"]["conflicting_texts"] == 0
    codes = {f["code"] for f in profile["findings"]}
    assert not codes & {"conflicting_labels", "exact_duplicates", "near_duplicates"}  # the sentence repeats
    # the same clip twice (stereo0 and stereo1 are the same bytes) under two speakers is one
    both = rows[rows["audio"].str.startswith("clips/stereo")]
    pd.concat([tones, both.assign(text="x")]).to_csv(tmp_path / "sounds" / "speakers.csv", index=False)
    (tmp_path / "again").mkdir()  # a store of its own: _profile_run reads the one run
    _, _, profile, _ = _profile_run(
        tmp_path / "again",
        "data=spoken_speakers",
        f"data.root={tmp_path / 'sounds'}",
        "data.splits.test.path=speakers.csv",
    )
    (conflict,) = [f for f in profile["findings"] if f["code"] == "conflicting_labels"]
    assert conflict["message"] == "labels in test: 1 audio(s) appear with different labels"


def test_profile_of_a_text_task_on_images_says_mismatch_and_where_to_go(
    digits: Path, tmp_path: Path, plugin_kind: None
) -> None:
    _, _, profile, _ = _profile_run(
        tmp_path,
        "data=demo_classification",
        f"data.root={digits}",
        "data.splits.train.path=train.csv",
        "data.splits.test.path=test.csv",
    )
    (mismatch, *_) = [f for f in profile["findings"] if f["code"] == "modality_mismatch"]
    assert mismatch["severity"] == "error" and mismatch["column"] == "train/image"
    assert {"image_classification", "image_clustering"} <= set(mismatch["evidence"]["tasks"])
    assert mismatch["evidence"]["kinds"] == ["clip", "image_features", PLUGIN_KIND]


# --- audio -----------------------------------------------------------------------------------------


def _audio_set(root: Path) -> None:
    """12 clips: 8 fine tones (two of them stereo 44.1 kHz FLAC), 2 silent, 2 clipped; plus 3 bad rows."""
    (root / "clips").mkdir(parents=True)
    t = np.arange(16000) / 16000
    names = []
    for i in range(6):
        soundfile.write(root / "clips" / f"tone{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t), 16000)
        names.append(f"clips/tone{i}.wav")
    t44 = np.arange(2 * 44100) / 44100
    for i in range(2):
        stereo = np.stack([0.2 * np.sin(2 * np.pi * 300 * t44), 0.1 * np.sin(2 * np.pi * 500 * t44)], axis=1)
        soundfile.write(root / "clips" / f"stereo{i}.flac", stereo, 44100)
        names.append(f"clips/stereo{i}.flac")
    for i in range(2):
        soundfile.write(root / "clips" / f"silent{i}.wav", np.zeros(8000), 16000)
        names.append(f"clips/silent{i}.wav")
    for i in range(2):  # a square wave at full scale: clipped
        soundfile.write(root / "clips" / f"loud{i}.wav", np.sign(np.sin(2 * np.pi * 100 * t)), 16000)
        names.append(f"clips/loud{i}.wav")
    soundfile.write(root / "clips" / "empty.wav", np.zeros(0), 16000)
    (root / "clips" / "notes.wav").write_text("not audio")
    names += ["clips/empty.wav", "clips/notes.wav", "clips/gone.wav"]
    pd.DataFrame({"audio": names, "speaker": [f"s{i % 3}" for i in range(len(names))]}).to_csv(
        root / "clips.csv", index=False
    )


def test_profile_of_audio_reports_durations_rates_channels_silence_and_clipping(tmp_path: Path) -> None:
    _audio_set(tmp_path / "sounds")
    result, run, profile, report = _profile_run(
        tmp_path, "table.path=clips.csv", f"table_root={tmp_path / 'sounds'}"
    )
    audio = _column(profile, "table/audio")
    assert audio["type"]["kind"] == ColumnKind.audio_path and audio["text"] is None
    media = audio["media"]
    assert (media["rows"], media["readable"], media["checked"]) == (15, 12, 12)
    assert media["sample_rates"] == {"16000": 10, "44100": 2}
    assert media["channels"] == {"1": 10, "2": 2}
    assert media["formats"] == {"WAV": 10, "FLAC": 2}
    assert media["duration_s"]["min"] == 0.5 and media["duration_s"]["max"] == 2.0
    assert media["total_seconds"] == pytest.approx(6 + 4 + 1 + 2)
    assert (media["silent"], media["clipped"]) == (2, 2)
    assert media["problems"] == {"missing": 1, "empty": 1, "unreadable": 1}
    metrics = run.data.metrics
    assert metrics["profile/table/audio/silent_rate"] == pytest.approx(2 / 12)
    assert metrics["profile/table/audio/clipped_rate"] == pytest.approx(2 / 12)
    tags = run.data.tags
    assert (
        "16.7% of the clips in `table/audio` are silent" in tags["embsel.profile.finding.warn.silent_clips"]
    )
    assert (
        "16.7% of the clips in `table/audio` are clipped" in tags["embsel.profile.finding.warn.clipped_clips"]
    )
    assert "3 of 15 audio file(s)" in tags["embsel.profile.finding.error.bad_media"]
    assert "sample rates 16000 Hz 83.3%, 44100 Hz 16.7%; mono 83.3%, 2 channels 16.7%" in result.stdout
    assert "silent clips" in report and "2 of 12 decoded" in report


def test_the_decoded_audio_sample_is_capped(tmp_path: Path) -> None:
    _audio_set(tmp_path / "sounds")
    _, _, profile, _ = _profile_run(
        tmp_path, "table.path=clips.csv", f"table_root={tmp_path / 'sounds'}", "profile.media_sample=4"
    )
    media = _column(profile, "table/audio")["media"]
    assert media["readable"] == 12 and media["checked"] == 4  # headers for all, 4 decoded, evenly spaced
    assert media["sample_rates"] == {"16000": 10, "44100": 2}


# --- the modality guard ----------------------------------------------------------------------------


def _task_data(frame: pd.DataFrame, task: str) -> TaskData:
    return TaskData(
        name="digits", task=task, split="test", examples=None, tables=[TableInfo("test", "test.csv", frame)]
    )


def test_a_text_kind_on_an_image_task_is_refused_naming_the_kinds_that_fit(digits: Path) -> None:
    data = _task_data(pd.read_csv(digits / "test.csv", dtype=str), IMAGE_TASK)
    minilm = ModelConfig(
        name="minilm", name_or_path="sentence-transformers/all-MiniLM-L6-v2", kind="transformers"
    )
    with pytest.raises(ModalityMismatch) as caught:
        refuse_modality_mismatch(data, ProfileConfig(), root=digits, model=minilm)
    assert str(caught.value) == f"model 'minilm' (kind transformers) {REFUSED}"
    # allow_modality_mismatch is about columns: it never lets a kind embed what it cannot take
    with pytest.raises(ModalityMismatch):
        refuse_modality_mismatch(data, ProfileConfig(allow_modality_mismatch=True), root=digits, model=minilm)


def test_a_plugin_kind_that_fits_is_named_and_accepted(digits: Path, plugin_kind: None) -> None:
    data = _task_data(pd.read_csv(digits / "test.csv", dtype=str), IMAGE_TASK)
    for kind in ("image_features", "clip", PLUGIN_KIND):  # image only, or image and text: both take image
        refuse_modality_mismatch(data, ProfileConfig(), root=digits, model=ModelConfig(name=kind, kind=kind))
    with pytest.raises(ModalityMismatch, match=f"use a kind that does: clip, image_features, {PLUGIN_KIND}$"):
        refuse_modality_mismatch(data, ProfileConfig(), model=ModelConfig(name="m", kind="transformers"))


def test_an_image_kind_on_an_image_text_task_is_refused(digits: Path) -> None:
    data = _task_data(pd.read_csv(digits / "test.csv", dtype=str), "image_to_text_retrieval")
    with pytest.raises(ModalityMismatch) as caught:
        refuse_modality_mismatch(
            data, ProfileConfig(), model=ModelConfig(name="pixels", kind="image_features")
        )
    assert str(caught.value) == (
        "model 'pixels' (kind image_features) embeds image only; "
        "task image_to_text_retrieval embeds text and image: use a kind that does: clip"
    )


def test_a_text_task_whose_text_column_holds_image_paths_is_still_refused(digits: Path) -> None:
    frame = pd.read_csv(digits / "test.csv", dtype=str)[["image", "label"]].rename(columns={"image": "text"})
    minilm = ModelConfig(name="minilm", name_or_path="x", kind="transformers")
    with pytest.raises(ModalityMismatch) as caught:
        refuse_modality_mismatch(
            _task_data(frame, "classification"), ProfileConfig(), root=digits, model=minilm
        )
    message = str(caught.value)
    assert "the 'text' column of digits/test holds image paths" in message
    assert "for image data use data.task=image_classification or image_clustering or " in message
    assert "with a kind that embeds it (clip, image_features)" in message
    assert message.endswith("or set profile.allow_modality_mismatch=true") and "\n" not in message
    refuse_modality_mismatch(
        _task_data(frame, "classification"),
        ProfileConfig(allow_modality_mismatch=True),
        root=digits,
        model=minilm,
    )


def test_evaluate_refuses_a_text_model_on_the_digits_in_one_line_and_a_failed_run(
    digits: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    args = [
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "data=digits",
        f"data.root={digits}",
        "evaluation.show_progress=false",
        _store(tmp_path),
    ]
    message = assert_one_line_error(invoke("evaluate", *args, cwd=tmp_path))
    assert message == f"model 'transformers_mean' (kind transformers) {REFUSED}"
    client = MlflowClient(_store(tmp_path).split("=", 1)[1])
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED" and run.data.tags["error"] == message
