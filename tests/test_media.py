"""Images and sound as inputs: safe paths, header checks, limits, lazy decoding, bad-media policy.

Real files only: PNGs and JPEGs written by Pillow (and one written by hand, to claim 100
megapixels cheaply), WAV and FLAC written by soundfile, a ``datasets`` Image column saved to
parquet, and a data config read through ``data.tables``.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from PIL import Image

from embsel_mlflow.config import DataConfig, MediaConfig, TableConfig
from embsel_mlflow.data.tables import Loaded, Tables, media
from embsel_mlflow.errors import ConfigError, MediaError
from embsel_mlflow.media import AUDIO, IMAGE, Media, item_hash, media_io
from embsel_mlflow.media.decode import load_audio, load_images
from embsel_mlflow.media.paths import make_media

LIMITS = MediaConfig()


def _png(path: Path, size: tuple[int, int] = (16, 12), value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    samples = np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)
    soundfile.write(path, samples.astype(np.float32), rate, subtype="PCM_16")
    return path


def _check(value: object, modality: str, root: Path, limits: MediaConfig = LIMITS) -> Media:
    return make_media(value, modality, root=root.resolve(), row=7, where="demo/test.csv", limits=limits)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _big_png(path: Path, width: int, height: int) -> Path:
    """A real, valid grayscale PNG of width x height (zeros), written by hand: zlib squeezes
    100 MB of pixels into about 400 kB, and no image library ever holds them."""
    compressor = zlib.compressobj(1)
    row = b"\0" * (width + 1)  # filter byte + one byte per pixel
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    return path


_PEAK_SCRIPT = """
import sys
from embsel_mlflow.media import media_io
from PIL import Image
import soundfile, soxr

def peak():
    # VmHWM, the peak RSS of this process image: ru_maxrss would carry the parent's peak over exec
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB

before = peak()
try:
    {call}
except media_io.BadMediaFile as err:
    print("refused:", err, file=sys.stderr)
print(peak() - before)
"""


def _peak_growth_mb(call: str) -> float:
    """How much ``call`` raised the peak memory of a fresh process (this one's peak is long past)."""
    script = _PEAK_SCRIPT.format(call=call)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return float(done.stdout.strip())


# --- good files ----------------------------------------------------------------------------------


def test_a_good_image_is_a_content_hashed_media_item(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "a.png")
    item = _check("images/a.png", IMAGE, tmp_path)
    assert item.path == str((tmp_path / "images" / "a.png").resolve())
    assert item.limit == LIMITS.max_image_pixels
    (tmp_path / "copy.png").write_bytes((tmp_path / "images" / "a.png").read_bytes())
    copy = _check("copy.png", IMAGE, tmp_path)
    assert item_hash(copy) == item_hash(item)  # same bytes under another name: one cache entry
    (image,) = load_images([item])
    assert image.mode == "RGB" and image.size == (16, 12)


def test_a_good_clip_carries_its_duration_from_the_header(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", seconds=1.25, rate=8000)
    item = _check("a.wav", AUDIO, tmp_path)
    assert item.duration_s == pytest.approx(1.25)
    (clip,) = load_audio([item], sample_rate=16000)
    assert clip.dtype == np.float32 and clip.shape == (20000,)


# --- bad files: one line naming the row, the file and the fix -------------------------------------


def _refused(value: object, modality: str, root: Path, limits: MediaConfig = LIMITS) -> str:
    with pytest.raises(MediaError) as caught:
        _check(value, modality, root, limits)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("row 7 of demo/test.csv (")  # the row and the table
    assert message.endswith("or set data.on_bad_media=skip to leave such rows out")  # the fix
    return message


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    message = _refused("images/nope.png", IMAGE, tmp_path)
    assert "'images/nope.png'" in message and "no such file" in message


def test_a_png_that_is_really_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("id,text\n1,hello\n")
    message = _refused("fake.png", IMAGE, tmp_path)
    assert "not an image Pillow can read" in message


def test_a_truncated_png_is_refused_when_loaded_not_when_embedded(tmp_path: Path) -> None:
    data = _png(tmp_path / "whole.png", (64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    message = _refused("cut.png", IMAGE, tmp_path)
    assert "corrupt or truncated image" in message


def test_a_truncated_jpeg_is_refused_too(tmp_path: Path) -> None:
    """JPEG has no checksums: Pillow's verify() passes a cut file; a 1/8-scale decode does not."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert _check("whole.jpg", IMAGE, tmp_path).path is not None
    assert "corrupt or truncated image" in _refused("cut.jpg", IMAGE, tmp_path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert "the file is empty (0 bytes)" in _refused("empty.png", IMAGE, tmp_path)
    assert "the file is empty (0 bytes)" in _refused("empty.wav", AUDIO, tmp_path)


def test_a_zero_length_wav_is_refused(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    assert (tmp_path / "silent.wav").stat().st_size > 0  # a real header, no samples
    assert "the clip is empty (0 samples)" in _refused("silent.wav", AUDIO, tmp_path)


def test_text_in_an_audio_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not audio at all\n")
    assert "not an audio file libsndfile can read" in _refused("notes.wav", AUDIO, tmp_path)


def test_an_empty_cell_is_refused(tmp_path: Path) -> None:
    assert "no image path (empty cell)" in _refused("  ", IMAGE, tmp_path)
    assert "no audio path (empty cell)" in _refused(float("nan"), AUDIO, tmp_path)


def test_a_url_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert "download the files" in _refused("https://example.com/a.png", IMAGE, tmp_path)


# --- limits ----------------------------------------------------------------------------------------


def test_a_100_megapixel_png_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    big = _big_png(tmp_path / "huge.png", 10_000, 10_000)
    assert big.stat().st_size < 1_000_000
    with pytest.warns(Image.DecompressionBombWarning), Image.open(big) as image:
        assert image.size == (10_000, 10_000)  # a real PNG Pillow reads: the refusal is ours
    started = time.perf_counter()
    message = _refused("huge.png", IMAGE, tmp_path)
    assert "10000x10000 pixels is over the limit of 40,000,000 (data.media.max_image_pixels)" in message
    with pytest.raises(media_io.BadMediaFile, match="over the limit"):
        media_io.open_image(str(big))  # the decode path refuses it the same way
    assert time.perf_counter() - started < 2.0
    assert _peak_growth_mb(f"media_io.open_image({str(big)!r})") < 20
    # the measure sees a decode: with the limit raised, the same call holds 100 MB (L) + 300 MB (RGB)
    assert _peak_growth_mb(f"media_io.open_image({str(big)!r}, max_pixels=10**9)") > 300


def test_an_image_beyond_pillows_own_bomb_limit_is_one_line_too(tmp_path: Path) -> None:
    """Over 2 x 89 MP Pillow raises DecompressionBombError on open: still our one line."""
    big = _big_png(tmp_path / "bomb.png", 20_000, 10_000)
    assert "over the limit of" in _refused("bomb.png", IMAGE, tmp_path)
    with pytest.raises(media_io.BadMediaFile, match="over the limit"):
        media_io.image_header(str(big))


def test_a_lower_pixel_limit_is_the_configured_one(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (20, 10))
    message = _refused("a.png", IMAGE, tmp_path, MediaConfig(max_image_pixels=100))
    assert "20x10 pixels is over the limit of 100" in message


def test_a_real_two_hour_flac_is_refused_from_its_header(tmp_path: Path) -> None:
    """Two hours of 8 kHz silence as FLAC: ~180 kB, written in under a second, never decoded."""
    started = time.perf_counter()
    with soundfile.SoundFile(tmp_path / "long.flac", "w", 8000, 1, format="FLAC", subtype="PCM_16") as out:
        minute = np.zeros(8000 * 60, dtype=np.int16)
        for _ in range(120):
            out.write(minute)
    assert time.perf_counter() - started < 5.0
    assert (tmp_path / "long.flac").stat().st_size < 2_000_000
    message = _refused("long.flac", AUDIO, tmp_path)
    assert "7200 s long, over the limit of 600 s (data.media.max_audio_seconds)" in message
    read = f"media_io.read_audio({str(tmp_path / 'long.flac')!r}, sample_rate=8000"
    with pytest.raises(media_io.BadMediaFile, match="over the limit"):
        eval(read + ")")  # the decode path refuses it the same way
    assert _peak_growth_mb(read + ")") < 20
    # the measure sees a decode: with the limit raised, 57.6 M samples of float32 are 230 MB
    assert _peak_growth_mb(read + ", max_seconds=10_000)") > 200


def test_a_lower_audio_limit_and_file_size_limit(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", seconds=3.0)
    assert "3 s long, over the limit of 2 s" in _refused(
        "a.wav", AUDIO, tmp_path, MediaConfig(max_audio_seconds=2.0)
    )
    assert "over the limit of 0.01 MB (data.media.max_file_mb)" in _refused(
        "a.wav", AUDIO, tmp_path, MediaConfig(max_file_mb=0.01)
    )


# --- paths that leave data.root -----------------------------------------------------------------


def test_dot_dot_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _png(tmp_path / "outside.png")
    root.mkdir()
    message = _refused("../outside.png", IMAGE, root)
    assert "leads outside data.root" in message and "through '..' or an absolute path" in message
    assert "leads outside data.root" in _refused(str(tmp_path / "outside.png"), IMAGE, root)


def test_a_symlink_out_of_the_root_is_refused_but_one_inside_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _png(tmp_path / "secret.png")
    _png(root / "images" / "real.png")
    (root / "images" / "escape.png").symlink_to(tmp_path / "secret.png")
    (root / "images" / "alias.png").symlink_to(root / "images" / "real.png")
    (root / "linked_dir").symlink_to(tmp_path)  # a directory link out of the root
    assert "through a symlink" in _refused("images/escape.png", IMAGE, root)
    assert "through a symlink" in _refused("linked_dir/secret.png", IMAGE, root)
    assert _check("images/alias.png", IMAGE, root).path == str((root / "images" / "real.png").resolve())


# --- decoding: RGB images, mono audio at the model's rate ------------------------------------------


def test_stereo_44k_audio_becomes_16k_mono_exactly_as_soxr_makes_it(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)
    soundfile.write(
        tmp_path / "stereo.wav", np.stack([left, right], axis=1).astype(np.float32), rate, subtype="FLOAT"
    )
    item = _check("stereo.wav", AUDIO, tmp_path)
    assert item.duration_s == pytest.approx(1.0)
    (clip,) = load_audio([item], sample_rate=16000)
    expected = soxr.resample(((left + right) / 2).astype(np.float32), rate, 16000, quality="HQ")
    assert clip.shape == expected.shape == (16000,)
    np.testing.assert_allclose(clip, expected, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(clip))
    assert {int(np.argmax(spectrum)), int(np.argsort(spectrum)[-2])} == {440, 1000}


def test_audio_at_the_model_rate_is_not_resampled(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", seconds=0.25, rate=16000)
    (clip,) = load_audio([_check("a.wav", AUDIO, tmp_path)], sample_rate=16000)
    expected, _ = soundfile.read(tmp_path / "a.wav", dtype="float32")
    np.testing.assert_array_equal(clip, expected)


def test_grayscale_and_palette_images_decode_as_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "gray.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P").save(tmp_path / "pal.gif")
    gray, palette = load_images([_check("gray.png", IMAGE, tmp_path), _check("pal.gif", IMAGE, tmp_path)])
    assert gray.mode == palette.mode == "RGB"
    assert np.asarray(gray)[0, 5].tolist() == [5, 5, 5]


def test_a_file_broken_after_loading_fails_at_decode_with_the_row(tmp_path: Path) -> None:
    data = _png(tmp_path / "a.png", (64, 64)).read_bytes()
    item = _check("a.png", IMAGE, tmp_path)
    (tmp_path / "a.png").write_bytes(data[:200])
    with pytest.raises(MediaError, match=r"^row 7 of demo/test.csv \('a.png'\): corrupt or truncated image"):
        load_images([item])


def test_decoding_refuses_the_wrong_modality(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    with pytest.raises(MediaError, match="expected image inputs, got audio"):
        load_images([_check("a.wav", AUDIO, tmp_path)])
    with pytest.raises(MediaError, match="expected audio inputs, got text"):
        load_audio(["a text"], sample_rate=16000)  # type: ignore[list-item]


def test_served_inputs_decode_from_paths_base64_and_bytes(tmp_path: Path) -> None:
    import base64

    path = _png(tmp_path / "a.png")
    data = path.read_bytes()
    for value in (str(path), base64.b64encode(data).decode(), data):
        image = media_io.open_image(media_io.decode_input(value))
        assert image.size == (16, 12)
    with pytest.raises(media_io.BadMediaFile, match="neither an existing file nor base64"):
        media_io.decode_input("no/such/file.png")


# --- datasets Image features: inline bytes ---------------------------------------------------------


def test_a_datasets_image_column_saved_to_parquet_is_read_as_inline_media(tmp_path: Path) -> None:
    """A ``datasets.Dataset`` with an ``Image()`` feature, saved to parquet and read back through a
    data config: its cells are ``{"bytes", "path"}``; the bytes are the item, the path only names it."""
    import datasets

    cells = []
    for digit in range(4):
        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8), digit * 60, dtype=np.uint8)).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": f"/elsewhere/{digit}.png"})
    cells[2] = {"bytes": b"", "path": "/elsewhere/empty.png"}  # an empty cell: refused, then skipped
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    labels = ["0", "1", "2", "3"]
    datasets.Dataset.from_dict({"image": cells, "label": labels}, features=features).to_parquet(
        str(tmp_path / "test.parquet")
    )
    cfg = DataConfig(name="inline", task="classification", root=str(tmp_path), on_bad_media="skip")
    cfg.splits = {"test": TableConfig(path="test.parquet")}
    tables = Tables(cfg)
    loaded: Loaded = tables.split("test", ["image", "label"])
    kept, items = media(tables, loaded.frame, "image", loaded, IMAGE)
    assert kept["label"].tolist() == ["0", "1", "3"]
    assert [item.path for item in items] == [None, None, None]  # never the recorded path
    assert [item.source for item in items] == ["/elsewhere/0.png", "/elsewhere/1.png", "/elsewhere/3.png"]
    images = load_images(items)
    assert [np.asarray(image)[0, 0, 0] for image in images] == [0, 60, 180]
    (warning,) = tables.warnings
    assert warning.code == "bad_media_skipped" and warning.count == 1
    assert "image bytes are empty" in warning.message


def test_a_datasets_audio_column_saved_to_parquet_is_read_as_inline_media(tmp_path: Path) -> None:
    """An ``Audio()`` column (cast from {bytes, path} cells: encoding would need torchcodec), saved to
    parquet: read back through a data config, each cell is a clip at 22.05 kHz, resampled on decode."""
    import datasets

    cells = []
    for seconds in (0.5, 1.0):
        buffer = io.BytesIO()
        soundfile.write(buffer, np.full(int(22050 * seconds), 0.25, dtype=np.float32), 22050, format="WAV")
        cells.append({"bytes": buffer.getvalue(), "path": f"clip_{seconds}.wav"})
    dataset = datasets.Dataset.from_dict({"audio": cells, "speaker": ["a", "b"]})
    dataset.cast_column("audio", datasets.Audio()).to_parquet(str(tmp_path / "test.parquet"))
    cfg = DataConfig(name="inline", task="classification", root=str(tmp_path))
    cfg.splits = {"test": TableConfig(path="test.parquet")}
    tables = Tables(cfg)
    loaded = tables.split("test", ["audio", "speaker"])
    _, items = media(tables, loaded.frame, "audio", loaded, AUDIO)
    assert [item.duration_s for item in items] == [0.5, 1.0] and items[0].path is None
    clips = load_audio(items, sample_rate=16000)
    assert [clip.shape for clip in clips] == [(8000,), (16000,)]
    assert abs(float(clips[1][4000:12000].mean()) - 0.25) < 1e-3


# --- data.on_bad_media through a data config -------------------------------------------------------


def _bad_media_set(root: Path) -> Path:
    _png(root / "images" / "0.png", value=1)
    _png(root / "images" / "1.png", value=2)
    (root / "images" / "2.png").write_text("not a png")
    _png(root / "images" / "4.png", value=4)
    (root / "test.csv").write_text(
        "image,label\nimages/0.png,a\nimages/1.png,b\nimages/2.png,c\nimages/3.png,d\nimages/4.png,e\n"
    )
    return root / "test.csv"


def _tables(root: Path, on_bad: str) -> tuple[Tables, Loaded]:

    cfg = DataConfig(name="bad", task="classification", root=str(root), on_bad_media=on_bad)
    cfg.splits = {"test": TableConfig(path="test.csv")}
    tables = Tables(cfg)
    return tables, tables.split("test", ["image", "label"])


def test_bad_media_is_an_error_naming_the_file_and_row_by_default(tmp_path: Path) -> None:
    csv = _bad_media_set(tmp_path)
    tables, loaded = _tables(tmp_path, "error")
    with pytest.raises(MediaError) as caught:
        media(tables, loaded.frame, "image", loaded, IMAGE)
    assert str(caught.value).startswith(f"row 3 of {csv.resolve()} ('images/2.png'): not an image")


def test_on_bad_media_skip_leaves_rows_out_and_counts_them(tmp_path: Path) -> None:
    csv = _bad_media_set(tmp_path)
    tables, loaded = _tables(tmp_path, "skip")
    kept, items = media(tables, loaded.frame, "image", loaded, IMAGE)
    assert kept["label"].tolist() == ["a", "b", "e"]
    assert [item.source for item in items] == ["images/0.png", "images/1.png", "images/4.png"]
    assert [item.row for item in items] == [1, 2, 5]
    (warning,) = tables.warnings
    assert warning.code == "bad_media_skipped" and warning.count == 2
    assert warning.message.startswith(f"{csv.resolve()}: 2 of 5 row(s)")
    assert "first: row 3 of" in warning.message and "not an image" in warning.message
    assert "\n" not in warning.message


def test_an_unknown_on_bad_media_value_is_a_config_error(tmp_path: Path) -> None:
    _bad_media_set(tmp_path)
    tables, loaded = _tables(tmp_path, "ignore")
    with pytest.raises(ConfigError, match=r"data\.on_bad_media must be one of error, skip"):
        media(tables, loaded.frame, "image", loaded, IMAGE)
