"""The image and audio task families on real data, through ``load_task_data`` and ``build_task``.

Images are scikit-learn's digits (1,797 real 8x8 scans) written as PNGs; sound is made by
espeak-ng (several voices, sentence-length utterances). The encoders are deterministic and
simple (pixels + PCA, MFCC statistics), so the numbers are real and reproducible; the MTEB
parity of the same families is tests/test_media_parity.py.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import DataConfig, EvaluationConfig, TableConfig
from embsel_mlflow.errors import ConfigError, DataError, MediaError
from embsel_mlflow.families import FAMILIES, PairKind, build_task, get_family, load_task_data
from embsel_mlflow.media.decode import load_audio, load_images
from embsel_mlflow.media.items import AUDIO, IMAGE, TEXT, Media, modality_of

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MEDIA_FAMILIES = {
    "image_classification": ({IMAGE}, ("image",), ("image", "label"), None),
    "image_clustering": ({IMAGE}, ("image",), ("image", "label"), None),
    "zero_shot_image_classification": ({IMAGE, TEXT}, ("image",), ("image", "label"), PairKind.media_text),
    "image_to_text_retrieval": ({IMAGE, TEXT}, ("image", "text"), ("image", "text"), PairKind.media_text),
    "text_to_image_retrieval": ({IMAGE, TEXT}, ("image", "text"), ("image", "text"), PairKind.media_text),
    "audio_classification": ({AUDIO}, ("audio",), ("audio", "label"), None),
    "audio_clustering": ({AUDIO}, ("audio",), ("audio", "label"), None),
    "audio_to_text_retrieval": ({AUDIO, TEXT}, ("audio", "text"), ("audio", "text"), PairKind.media_text),
    "text_to_audio_retrieval": ({AUDIO, TEXT}, ("audio", "text"), ("audio", "text"), PairKind.media_text),
}


def write_digits(root: Path, count: int | None = None) -> list[tuple[str, str]]:
    """Digits as grayscale PNGs ``images/<i>.png`` under ``root`` (0..16 scaled to 0..255), in the
    demo set's order (shuffled with seed 0); [(path relative to root, label), ...]."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (root / "images").mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(0).permutation(len(digits.target))[:count]
    rows = []
    for index in order:
        name = f"images/{index}.png"
        pixels = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(root / name)
        rows.append((name, str(digits.target[index])))
    return rows


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def data_config(root: Path, task: str, splits: dict[str, str], **extra) -> DataConfig:
    return DataConfig(
        name="media",
        task=task,
        root=str(root),
        splits={name: TableConfig(path=path) for name, path in splits.items()},
        **extra,
    )


def evaluate(data, encoder, **evaluation):
    return build_task(data, EvaluationConfig(show_progress=False, **evaluation)).evaluate(encoder)


# --------------------------------------------------------------------------- encoders


class PixelPCA:
    """Flattened grayscale pixels, projected on a PCA fitted on a family's fit inputs (no labels)."""

    def __init__(self, fit_items: list[Media], dim: int = 32) -> None:
        from sklearn.decomposition import PCA

        self.pca = PCA(dim, random_state=0).fit(self._pixels(fit_items))

    @staticmethod
    def _pixels(items) -> np.ndarray:
        return np.stack(
            [np.asarray(image.convert("L"), dtype=np.float32).ravel() / 255 for image in load_images(items)]
        )

    def encode(self, items, *, role=None, show_progress=False) -> np.ndarray:
        assert modality_of(items) == IMAGE, "this encoder embeds images only"
        return self.pca.transform(self._pixels(items)).astype(np.float32)


class Prototypes:
    """A stand-in image-text model: images by pixel PCA, a text by the mean embedding of the train
    images paired with it (so a caption lands on its class's centroid)."""

    def __init__(self, images: PixelPCA, train: list[tuple[Media, str]]) -> None:
        self.images = images
        vectors = images.encode([item for item, _ in train])
        self.texts = {
            text: vectors[[i for i, (_, t) in enumerate(train) if t == text]].mean(axis=0)
            for text in dict.fromkeys(text for _, text in train)
        }

    def encode(self, items, *, role=None, show_progress=False) -> np.ndarray:
        if modality_of(items) == TEXT:
            return np.stack([self.texts[text] for text in items]).astype(np.float32)
        return self.images.encode(items)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The demo layout: train 900 / test 597 of the shuffled digits, and a pairs table per image."""
    root = tmp_path_factory.mktemp("digits")
    rows = write_digits(root)
    train, test = rows[:900], rows[900:1497]
    write_csv(
        root / "train.csv", ["image", "label", "text"], [(i, y, f"a handwritten digit {y}") for i, y in train]
    )
    write_csv(
        root / "test.csv", ["image", "label", "text"], [(i, y, f"a handwritten digit {y}") for i, y in test]
    )
    # two captions per image: a per-class caption and the number's word
    pairs = [
        (image, caption)
        for image, label in test[:200]
        for caption in (f"a handwritten digit {label}", f"the number {DIGIT_WORDS[int(label)]}")
    ]
    write_csv(root / "pairs.csv", ["image", "text"], pairs)
    return {"root": root, "train": train, "test": test, "pairs": pairs}


@pytest.fixture(scope="module")
def pixels(digits):
    data = load_task_data(
        data_config(digits["root"], "image_classification", {"train": "train.csv", "test": "test.csv"})
    )
    items, _ = data.family.fit_texts(data)
    return PixelPCA(items)


@pytest.fixture(scope="module")
def prototypes(digits, pixels):
    """Caption -> class centroid, from the train split (never the evaluated one)."""
    data = load_task_data(
        data_config(digits["root"], "image_classification", {"train": "train.csv", "test": "test.csv"})
    )
    ex = data.examples
    captions = [f"a handwritten digit {y}" for y in ex.train_labels]
    words = [f"the number {DIGIT_WORDS[int(y)]}" for y in ex.train_labels]
    pairs = list(zip(ex.train_texts, captions, strict=True)) + list(zip(ex.train_texts, words, strict=True))
    return Prototypes(pixels, pairs)


# --------------------------------------------------------------------------- registry


def test_media_families_are_registered_with_their_modalities_columns_and_pairs():
    for name, (modalities, embedded, window, pairs) in MEDIA_FAMILIES.items():
        family = get_family(name)
        assert family is FAMILIES[name] and family.name == name
        assert family.modalities == frozenset(modalities), name
        assert family.embedded_columns == embedded, name
        assert family.window_columns == window, name
        assert family.pair_kind == pairs, name
        assert family.task_class.task_type == name
        assert not family.ranks_documents and not family.qrels_splits, name


# --------------------------------------------------------------------------- image classification


def test_image_classification_on_digits_with_pixel_pca(digits, pixels):
    cfg = data_config(digits["root"], "image_classification", {"train": "train.csv", "test": "test.csv"})
    data = load_task_data(cfg)
    ex = data.examples
    assert (len(ex.train_texts), len(ex.test_texts)) == (900, 597)
    assert all(isinstance(item, Media) and item.modality == IMAGE for item in ex.test_texts)
    assert ex.test_labels[:3] == [label for _, label in digits["test"][:3]]
    # LSA-style fitting sees the train images only, never a label
    fit, what = data.family.fit_texts(data)
    assert fit == ex.train_texts and what == "train images (no labels)"

    result = evaluate(data, pixels)  # MTEB's defaults: 10 experiments, 8 samples per label
    # measured 0.902 (the quick check: 0.889 at 8 per label); 0.930 at 16 per label
    assert result.main_score >= 0.85
    assert evaluate(data, pixels, samples_per_label=16).main_score > result.main_score
    assert list(result.per_item.columns) == ["image", "label", "predicted", "agreement"]
    assert result.per_item["image"].iloc[0] == digits["test"][0][0]  # the path as the data gives it
    assert 80 <= result.num_texts_encoded - 597 <= 800  # the sampled train union + every test image

    # a validation hold-out of train images keeps the media examples type
    keep, held = data.family.hold_out(ex, lambda n: (np.arange(n - 50), np.arange(n - 50, n)))
    assert type(keep) is type(held) is type(ex)
    assert (len(keep.train_texts), len(held.test_texts)) == (850, 50) and held.test_texts[
        0
    ] == ex.train_texts[850]


def test_image_clustering_on_digits(digits, pixels):
    data = load_task_data(data_config(digits["root"], "image_clustering", {"test": "test.csv"}))
    result = evaluate(data, pixels)
    assert set(result.per_item.columns) == {"image", "label", "cluster"}
    assert 0.5 < result.main_score < 1.0  # k-means on pixel PCA recovers much of the digit classes
    statistic = data.family.item_statistic(result.per_item, np.arange(len(result.per_item))[None, :])
    assert statistic[0] == pytest.approx(result.main_score)


# --------------------------------------------------------------------------- zero-shot


def test_zero_shot_classifies_by_the_nearest_class_prompt(digits, prototypes):
    cfg = data_config(
        digits["root"],
        "zero_shot_image_classification",
        {"test": "test.csv"},
        label_template="a handwritten digit {label}",
    )
    data = load_task_data(cfg)
    ex = data.examples
    assert ex.classes == [str(d) for d in range(10)]  # numeric class order
    assert ex.prompts[3] == "a handwritten digit 3"
    result = evaluate(data, prototypes)
    assert result.main_score > 0.8  # nearest class centroid by cosine
    assert "ap" not in result.scores  # ten classes
    assert result.num_texts_encoded == 10 + 597
    # the predicted class is the argmax of the probabilities, per item
    assert set(result.per_item.columns) == {"image", "label", "predicted", "probability"}
    assert (result.per_item["probability"] > 0.1).all()
    correct = (result.per_item["label"] == result.per_item["predicted"]).mean()
    assert correct == pytest.approx(result.main_score)

    pairs = data.family.pair_columns(ex, pairs_per_class=1, seed=0)
    assert list(pairs) == ["image", "text"] and pairs["image"] == ex.items
    assert pairs["text"][0] == f"a handwritten digit {ex.labels[0]}"
    keep, held = data.family.hold_out(ex, lambda n: (np.arange(n - 97), np.arange(n - 97, n)))
    assert (len(keep.items), len(held.items)) == (500, 97) and held.classes == ex.classes


def test_zero_shot_classes_come_from_the_whole_split_under_a_limit(digits, prototypes):
    cfg = data_config(
        digits["root"],
        "zero_shot_image_classification",
        {"test": "test.csv"},
        limit=5,
        label_template="{label}",
    )
    data = load_task_data(cfg)
    assert len(data.examples.items) == 5 and len(data.examples.classes) == 10
    assert len(data.tables[-1].frame) == 5  # the run records the rows it evaluated


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a photo of a digit", "does not contain {label}"),
        ("a {label} of {kind}", "is not a template"),
        ("a {label", "is not a template"),
    ],
)
def test_a_bad_label_template_is_one_config_error(digits, template, message):
    cfg = data_config(
        digits["root"], "zero_shot_image_classification", {"test": "test.csv"}, label_template=template
    )
    with pytest.raises(ConfigError, match=message):
        load_task_data(cfg)


# --------------------------------------------------------------------------- image <-> text retrieval


def test_image_to_text_retrieval_queries_images_over_the_captions(digits, prototypes):
    data = load_task_data(data_config(digits["root"], "image_to_text_retrieval", {"test": "pairs.csv"}))
    ex = data.examples
    assert len(ex.queries) == 200 and len(ex.corpus) == 20  # identical captions are one document
    first_image, first_label = digits["test"][0]
    assert ex.qrels[f"image:{first_image}"] == {
        f"text:a handwritten digit {first_label}": 1,
        f"text:the number {DIGIT_WORDS[int(first_label)]}": 1,
    }
    result = evaluate(data, prototypes)
    assert result.main_score > 0.7
    assert result.per_item["query"].iloc[0] == first_image

    family = data.family
    items, role = family.monitor_texts(ex)
    assert role == "query" and modality_of(items) == IMAGE and len(items) == 200
    batch, singles, role = family.timing_texts(ex)
    assert modality_of(batch) == modality_of(singles) == IMAGE
    assert modality_of(family.calibration_texts(ex)) == IMAGE
    assert family.fit_texts(data)[1] == "test images (no texts)"
    pairs = family.pair_columns(ex, pairs_per_class=1, seed=0)
    assert len(pairs["image"]) == len(pairs["text"]) == len(digits["pairs"])
    assert (pairs["image"][0].source, pairs["text"][0]) == digits["pairs"][0]


def test_text_to_image_retrieval_queries_captions_over_the_images(digits, prototypes):
    data = load_task_data(data_config(digits["root"], "text_to_image_retrieval", {"test": "pairs.csv"}))
    ex = data.examples
    assert len(ex.queries) == 20 and len(ex.corpus) == 200
    count = sum(label == "3" for _, label in digits["test"][:200])
    assert len(ex.qrels["text:the number three"]) == count  # every image of a three is relevant
    result = evaluate(data, prototypes)
    assert result.main_score > 0.7
    items, role = data.family.monitor_texts(ex)
    assert role == "document" and modality_of(items) == IMAGE
    # hold-out: queries held out, the corpus kept whole, the examples type kept
    train, held = data.family.hold_out(ex, lambda n: (np.arange(n - 4), np.arange(n - 4, n)))
    assert type(train) is type(ex) and len(held.queries) == 4 and held.corpus is ex.corpus


def test_pairs_table_ids_duplicates_and_limit(digits, tmp_path):
    root = digits["root"]
    (image_a, _), (image_b, _) = digits["test"][:2]
    rows = [
        ("a", image_a, "first caption"),
        ("a", image_a, "second caption"),
        ("a", image_a, "second caption"),  # repeated pair: counted once, warned
        ("b", image_b, "first caption"),
    ]
    write_csv(root / "ids.csv", ["id", "image", "text"], rows)
    data = load_task_data(data_config(root, "image_to_text_retrieval", {"test": "ids.csv"}))
    assert data.examples.qrels == {
        "image:a": {"text:first caption": 1, "text:second caption": 1},
        "image:b": {"text:first caption": 1},
    }
    assert [(w.code, w.count) for w in data.warnings] == [("duplicate_pairs", 1)]

    limited = load_task_data(data_config(root, "text_to_image_retrieval", {"test": "ids.csv"}, limit=1))
    assert list(limited.examples.qrels) == ["text:first caption"]
    assert set(limited.examples.corpus) == {"image:a", "image:b"}  # the whole corpus
    assert len(limited.tables[-1].frame) == 2  # the rows of the kept query

    write_csv(root / "clash.csv", ["id", "image", "text"], [("a", image_a, "x"), ("a", image_b, "y")])
    with pytest.raises(DataError, match=r"rows 1 and 2 give image 'a' two different files"):
        load_task_data(data_config(root, "image_to_text_retrieval", {"test": "clash.csv"}))


# --------------------------------------------------------------------------- bad media


def test_bad_images_are_one_error_or_skipped_with_labels_kept_aligned(digits, tmp_path):
    root = digits["root"]
    (root / "images" / "not_an_image.png").write_text("this is text, not a PNG")
    good = digits["test"][:6]
    rows = [*good[:2], ("images/missing.png", "7"), good[2], ("images/not_an_image.png", "1"), *good[3:]]
    write_csv(root / "bad.csv", ["image", "label"], rows)
    splits = {"train": "train.csv", "test": "bad.csv"}

    with pytest.raises(MediaError) as error:
        load_task_data(data_config(root, "image_classification", splits))
    assert "row 3" in str(error.value) and "images/missing.png" in str(error.value)
    assert "\n" not in str(error.value)

    data = load_task_data(data_config(root, "image_classification", splits, on_bad_media="skip"))
    ex = data.examples
    assert [item.source for item in ex.test_texts] == [image for image, _ in good]
    assert ex.test_labels == [label for _, label in good]
    assert [(w.code, w.count) for w in data.warnings] == [("bad_media_skipped", 2)]
    assert len(data.tables[-1].frame) == len(good)  # the evaluated rows only


# --------------------------------------------------------------------------- audio

VOICES = ["en-us", "en-gb-scotland", "en+f3"]  # distinct voices (a bad name falls back silently)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call me back when you have finished reading the report.",
    "It is going to rain all day tomorrow in the northern hills.",
    "My favourite breakfast is toast with butter and a cup of tea.",
]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """3 espeak-ng voices x 4 sentences, 16 kHz mono WAV; train = 3 sentences, test = the last."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("spoken")
    (root / "audio").mkdir()
    rows = []
    for v, voice in enumerate(VOICES):
        for s, sentence in enumerate(SENTENCES):
            name = f"audio/{v}_{s}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(root / name), sentence], check=True)
            rows.append((name, voice, sentence))
    write_csv(root / "all.csv", ["audio", "speaker", "text"], rows)
    write_csv(root / "train.csv", ["audio", "speaker", "text"], [r for r in rows if r[2] != SENTENCES[-1]])
    write_csv(root / "test.csv", ["audio", "speaker", "text"], [r for r in rows if r[2] == SENTENCES[-1]])
    return root


class Mfcc:
    """Mean and standard deviation of 20 MFCCs (the audio baseline's statistics, without the PCA)."""

    def encode(self, items, *, role=None, show_progress=False) -> np.ndarray:
        import librosa

        assert modality_of(items) == AUDIO
        rows = []
        for clip in load_audio(items, sample_rate=16_000):
            mfcc = librosa.feature.mfcc(y=clip, sr=16_000, n_mfcc=20)
            rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
        return np.stack(rows).astype(np.float32)


def _speakers(root: Path, task: str, splits: dict[str, str]) -> DataConfig:
    cfg = data_config(root, task, splits)
    for table in cfg.splits.values():
        table.columns = {"label": "speaker"}
    return cfg


def test_audio_classification_and_clustering_of_voices(spoken):
    data = load_task_data(
        _speakers(spoken, "audio_classification", {"train": "train.csv", "test": "test.csv"})
    )
    assert all(item.modality == AUDIO and item.duration_s > 1.0 for item in data.examples.test_texts)
    result = evaluate(data, Mfcc(), samples_per_label=3)
    assert result.main_score == pytest.approx(1.0)  # three very different espeak voices (measured)
    assert result.per_item.columns[0] == "audio"

    clusters = load_task_data(_speakers(spoken, "audio_clustering", {"test": "all.csv"}))
    assert data.family.fit_texts(data)[1] == "train audio clips (no labels)"
    result = evaluate(clusters, Mfcc())
    assert result.main_score > 0.9  # measured 1.0: the three voices' clips form three clusters


def test_audio_text_retrieval_pairs_clips_with_their_transcripts(spoken):
    data = load_task_data(data_config(spoken, "audio_to_text_retrieval", {"test": "all.csv"}))
    ex = data.examples
    assert len(ex.queries) == 12 and len(ex.corpus) == 4  # one transcript per sentence
    assert all(len(judged) == 1 for judged in ex.qrels.values())
    reverse = load_task_data(data_config(spoken, "text_to_audio_retrieval", {"test": "all.csv"}))
    assert len(reverse.examples.queries) == 4
    assert all(len(judged) == 3 for judged in reverse.examples.qrels.values())  # each sentence, 3 voices
    items, role = reverse.family.monitor_texts(reverse.examples)
    assert role == "document" and modality_of(items) == AUDIO

    class Transcripts(Mfcc):
        """Each transcript embedded as the mean MFCC statistics of its clips: a stand-in audio-text model."""

        def __init__(self, pairs):
            clips = super().encode([item for item, _ in pairs])
            texts = [text for _, text in pairs]
            self.texts = {
                t: clips[[i for i, u in enumerate(texts) if u == t]].mean(axis=0) for t in set(texts)
            }

        def encode(self, items, *, role=None, show_progress=False):
            if modality_of(items) == TEXT:
                return np.stack([self.texts[text] for text in items])
            return super().encode(items)

    pairs = data.family.pair_columns(ex, pairs_per_class=1, seed=0)
    encoder = Transcripts(list(zip(pairs["audio"], pairs["text"], strict=True)))
    for loaded in (data, reverse):
        result = evaluate(loaded, encoder)
        assert 0.0 < result.main_score <= 1.0


# --------------------------------------------------------------------------- conf/data examples


@pytest.mark.parametrize(
    ("option", "task", "items"),
    [
        ("digits", "image_classification", 597),
        ("digits_clustering", "image_clustering", 597),
        ("digits_zero_shot", "zero_shot_image_classification", 597),
        ("spoken_speakers", "audio_clustering", 12),
        ("spoken_speaker_id", "audio_classification", 3),
        ("spoken_transcripts", "audio_to_text_retrieval", 3),
    ],
)
def test_conf_data_examples_load_the_demo_layout(option, task, items, request):
    from omegaconf import OmegaConf

    from embsel_mlflow.config.store import compose_config

    root = request.getfixturevalue("spoken" if option.startswith("spoken") else "digits")
    root = root if isinstance(root, Path) else root["root"]
    job = OmegaConf.to_object(compose_config("evaluate", [f"data={option}", f"data.root={root}"]))
    assert job.data.task == task
    data = load_task_data(job.data)
    assert data.family.item_count(data.examples) == items
