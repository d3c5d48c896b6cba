"""The offline demo sets for images and sound: real digits, and speech made with espeak-ng.

``write_digits(dir)``: scikit-learn's bundled ``load_digits`` (1,797 real 8x8 scans) as PNGs,
split with seed 0 into train (900), test (597) and three monitoring windows over the last 300:
plain, rotated 90 degrees, and under strong Gaussian noise.

``write_spoken(dir)``: six espeak-ng voices (accents, genders and synthesis styles far apart,
chosen by measuring resemblyzer on them) reading Harvard sentences, as 16 kHz mono WAV. Each
voice reads its own five test sentences (30 distinct transcripts, for audio-text retrieval) and
the same five train sentences (so a speaker classifier cannot lean on the words).

Both are deterministic: the same files, byte for byte, on every run with the same libraries.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from embsel_mlflow.errors import DataError

DIGITS_TRAIN = 900
DIGITS_TEST = 597
DIGITS_WINDOW = 300
NOISE_STD = 80.0  # on 0..255: strong enough that a digit's strokes are half buried
SEED = 0

SAMPLE_RATE = 16_000
# speaker -> espeak-ng voice (language + variant). Chosen from 22 candidates for the largest
# minimum distance between resemblyzer voice centroids (max cosine 0.75); with these, KMeans
# and agglomerative clustering found the speakers exactly on two disjoint sentence sets.
VOICES = {
    "scottish_f": "en-gb-scotland+f5",
    "lancaster_m": "en-gb-x-gbclan+m8",
    "rp_whisper": "en-gb-x-rp+whisper",
    "us_annie": "en-us+Annie",
    "us_klatt": "en-us+klatt2",
    "nyc_m": "en-us-nyc+m4",
}
# IEEE 1969 "Harvard" sentences (lists 1-4): phonetically balanced, a few seconds each.
TEST_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
)
TRAIN_SENTENCES = (  # read by every voice
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
)
PER_VOICE_TEST = len(TEST_SENTENCES) // len(VOICES)  # 5


def write_digits(directory: str | Path) -> dict[str, int]:
    """Write the digits set under ``directory``; returns {csv file (relative): rows}."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(directory)
    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    labels = [str(int(label)) for label in digits.target]
    order = np.random.default_rng(SEED).permutation(len(labels))
    train = order[:DIGITS_TRAIN]
    test = order[DIGITS_TRAIN : DIGITS_TRAIN + DIGITS_TEST]
    held_out = order[-DIGITS_WINDOW:]
    noise = np.random.default_rng(SEED + 1).normal(0.0, NOISE_STD, size=(DIGITS_WINDOW, 8, 8))
    versions = {
        "images": pixels,
        "images_rotated": np.rot90(pixels[held_out], k=1, axes=(1, 2)),
        "images_noised": np.clip(pixels[held_out] + noise, 0, 255).astype(np.uint8),
    }
    for folder in versions:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(versions["images"]):
        Image.fromarray(image).save(root / "images" / f"{index}.png")
    for folder in ("images_rotated", "images_noised"):
        for image, index in zip(versions[folder], held_out, strict=True):
            Image.fromarray(np.ascontiguousarray(image)).save(root / folder / f"{index}.png")

    def rows(indices: Iterable[Any], folder: str = "images") -> list[tuple[str, str, str]]:
        return [(f"{folder}/{i}.png", labels[i], f"a handwritten digit {labels[i]}") for i in indices]

    tables = {
        "train.csv": rows(train),
        "test.csv": rows(test),
        "windows/plain.csv": rows(held_out),
        "windows/rotated.csv": rows(held_out, "images_rotated"),
        "windows/noised.csv": rows(held_out, "images_noised"),
    }
    return {
        name: _write_csv(root / name, ("image", "label", "text"), table) for name, table in tables.items()
    }


def write_spoken(directory: str | Path) -> dict[str, int]:
    """Write the spoken set under ``directory`` (needs espeak-ng); returns {csv file: rows}."""
    _check_espeak()
    root = Path(directory)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    train: list[tuple[str, str, str]] = []
    test: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="embsel-espeak-") as scratch:
        for number, (speaker, voice) in enumerate(VOICES.items()):
            own = TEST_SENTENCES[number * PER_VOICE_TEST : (number + 1) * PER_VOICE_TEST]
            for split, sentences, table in (("test", own, test), ("train", TRAIN_SENTENCES, train)):
                for index, sentence in enumerate(sentences):
                    name = f"audio/{speaker}_{split}_{index}.wav"
                    _speak(voice, sentence, root / name, Path(scratch))
                    table.append((name, speaker, sentence))
    header = ("audio", "speaker", "text")
    return {
        "train.csv": _write_csv(root / "train.csv", header, train),
        "test.csv": _write_csv(root / "test.csv", header, test),
        "all.csv": _write_csv(root / "all.csv", header, train + test),
    }


def _check_espeak() -> None:
    """espeak-ng on the PATH, with every voice and variant of :data:`VOICES` (a missing variant
    would silently fall back to the default voice: six speakers that sound alike)."""
    if shutil.which("espeak-ng") is None:
        raise DataError(
            "espeak-ng is not installed: the spoken demo set is synthesised with it; "
            "install it (e.g. apt-get install espeak-ng) and run again"
        )
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=False
    ).stdout
    variants = {token.removeprefix("!v/") for token in listing.split() if token.startswith("!v/")}
    missing = [voice for voice in VOICES.values() if voice.split("+")[1] not in variants]
    if missing:
        raise DataError(
            f"espeak-ng lacks the voice variant(s) {', '.join(missing)}: install the full espeak-ng-data "
            "(e.g. apt-get install espeak-ng) and run again"
        )


def _speak(voice: str, sentence: str, target: Path, scratch: Path) -> None:
    """``sentence`` read by ``voice``, written to ``target`` as 16 kHz mono 16-bit WAV."""
    import numpy as np
    import soundfile
    import soxr

    raw = scratch / "speech.wav"
    done = subprocess.run(
        ["espeak-ng", "-v", voice, "-w", str(raw), sentence], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not raw.is_file():
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise DataError(
            f"espeak-ng could not speak with voice {voice!r} ({reason[0] if reason else 'no output'}); "
            "check the espeak-ng installation (apt-get install espeak-ng)"
        )
    samples, rate = soundfile.read(raw, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    soundfile.write(target, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)
