"""The image kinds: ``clip`` (tiny CLIP and SigLIP built here) and ``image_features`` on real digits.

Models load through the public path (``build_encoder``); images are real files (scikit-learn's
digits as PNGs) checked into :class:`Media` items as the families make them.
"""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.candidates import build_encoder, get_kind
from embsel_mlflow.config import ImageFeaturesConfig, MediaConfig, ModelConfig
from embsel_mlflow.data.task_data import TaskData
from embsel_mlflow.errors import ConfigError, DataError, MediaError, ModelError
from embsel_mlflow.media import Media
from embsel_mlflow.media.paths import make_media
from embsel_mlflow.models.cache import EmbeddingCache
from tests.tiny_media_models import build_tiny_clip, build_tiny_siglip, write_digit_pngs

CAPTIONS = ["a handwritten digit 3", "a photo of the number seven", "the cat sat on the mat"]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("tiny_siglip"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """All 1,797 digits as PNGs under one root: (root, [(file, label), ...]) in dataset order."""
    root = tmp_path_factory.mktemp("digits")
    return root, write_digit_pngs(root)


def _items(root: Path, names: list[str]) -> list[Media]:
    return [
        make_media(name, "image", root=root, row=row, where="digits/test", limits=MediaConfig())
        for row, name in enumerate(names)
    ]


def _clip_cfg(path: Path, **overrides) -> ModelConfig:
    return ModelConfig(name="tiny_clip", name_or_path=str(path), kind="clip", device="cpu", **overrides)


class ImagesFamily:
    """The part of an image family that a fitted model asks (``data.Family``): the images to fit on.

    Like the classification family, it gives the train split's images and never their labels.
    """

    name = "image_classification"
    ranks_documents = False

    def __init__(self, train: list[Media]) -> None:
        self.train = train

    def fit_texts(self, data: TaskData) -> tuple[list[Media], str]:
        return list(self.train), "train split (no labels)"

    def calibration_texts(self, examples: object) -> list[str]:
        return []


def _task_data(train: list[Media]) -> TaskData:
    return TaskData("digits", "image_classification", "test", None, family=ImagesFamily(train))


# --- clip -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_clip_kind_embeds_images_and_texts_as_transformers_does(
    which: str, tiny_clip_dir: Path, tiny_siglip_dir: Path, digits, tmp_path: Path
) -> None:
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    directory = tiny_clip_dir if which == "clip" else tiny_siglip_dir
    root, rows = digits
    names = [name for name, _ in rows[:40]]
    model = build_encoder(
        _clip_cfg(directory, normalize=True, batch_size=16), cache=EmbeddingCache(tmp_path / "c")
    )
    assert get_kind("clip").modalities == frozenset({"text", "image"})
    images = model.encode(_items(root, names))
    texts = model.encode(CAPTIONS)
    dim = 16 if which == "clip" else 32
    assert images.shape == (40, dim) and texts.shape == (3, dim) and images.dtype == np.float32
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)

    # The reference: transformers' own Auto classes and feature methods on the same files.
    reference = AutoModel.from_pretrained(directory).eval()
    processor = AutoProcessor.from_pretrained(directory, backend="pil")
    pil = [Image.open(root / name).convert("RGB") for name in names]
    padding = "max_length" if which == "siglip" else True
    with torch.inference_mode():
        want_images = reference.get_image_features(**processor(images=pil, return_tensors="pt")).pooler_output
        tokens = processor.tokenizer(CAPTIONS, padding=padding, truncation=True, return_tensors="pt")
        want_texts = reference.get_text_features(**tokens).pooler_output
    want_images = torch.nn.functional.normalize(want_images, dim=-1).numpy()
    want_texts = torch.nn.functional.normalize(want_texts, dim=-1).numpy()
    assert np.abs(images - want_images).max() < 1e-5
    assert np.abs(texts - want_texts).max() < 1e-5


def test_role_prompts_apply_to_texts_only(tiny_clip_dir: Path, digits) -> None:
    root, rows = digits
    items = _items(root, [name for name, _ in rows[:8]])
    model = build_encoder(_clip_cfg(tiny_clip_dir, query_prompt="a photo of ", document_prompt="the "))
    plain = model.encode(CAPTIONS)
    queried = model.encode(CAPTIONS, role="query")
    assert np.abs(queried - model.encode(["a photo of " + text for text in CAPTIONS])).max() < 1e-6
    assert np.abs(queried - plain).max() > 1e-3
    assert np.array_equal(model.encode(items, role="query"), model.encode(items, role=None))


def test_second_encode_of_the_same_images_is_all_hits_and_rewritten_file_misses(
    tiny_clip_dir: Path, digits, tmp_path: Path
) -> None:
    import shutil

    source_root, rows = digits
    root = tmp_path / "images"
    root.mkdir()
    for name, _ in rows[:12]:
        shutil.copy(source_root / name, root / name)
    names = [name for name, _ in rows[:12]]
    cache = EmbeddingCache(tmp_path / "cache")
    model = build_encoder(_clip_cfg(tiny_clip_dir), cache=cache)
    cold = model.encode(_items(root, names))
    assert (model.hits, model.misses) == (0, 12)
    warm = model.encode(_items(root, names))
    assert (model.hits, model.misses) == (12, 12) and np.array_equal(cold, warm)

    # Same path, new content (another digit written over it): a miss, and a new embedding.
    shutil.copy(source_root / rows[500][0], root / names[0])
    again = model.encode(_items(root, names))
    assert (model.hits, model.misses) == (12 + 11, 12 + 1)
    assert np.abs(again[0] - cold[0]).max() > 1e-4 and np.array_equal(again[1:], cold[1:])
    # And the same content under another name is a hit: the key is the content, not the path.
    shutil.copy(root / names[1], root / "copy.png")
    model.encode(_items(root, ["copy.png"]))
    assert model.hits == 12 + 11 + 1


def test_images_are_decoded_one_batch_at_a_time_and_a_bad_file_names_its_row(
    tiny_clip_dir: Path, digits, tmp_path: Path
) -> None:
    source_root, rows = digits
    names = [name for name, _ in rows[:20]]
    items = _items(source_root, names)
    model = build_encoder(_clip_cfg(tiny_clip_dir, batch_size=7))
    forward = model.forward
    seen: list[int] = []
    original = forward.encode

    def counting(inputs: list, modality: str) -> np.ndarray:  # records the batch sizes, encodes for real
        seen.append(len(inputs))
        return original(inputs, modality)

    forward.encode = counting
    try:
        batched = model.encode(items)
    finally:
        forward.encode = original
    assert seen == [7, 7, 6]
    assert np.abs(batched - build_encoder(_clip_cfg(tiny_clip_dir, batch_size=32)).encode(items)).max() < 1e-5

    # A file that turned corrupt after it was checked: one line naming the row and the file.
    broken = tmp_path / "broken.png"
    broken.write_bytes((source_root / names[0]).read_bytes())
    item = make_media("broken.png", "image", root=tmp_path, row=7, where="digits/test", limits=MediaConfig())
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(MediaError) as info:
        model.encode([item])
    assert "row 7 of digits/test ('broken.png')" in str(info.value) and "\n" not in str(info.value)


def test_clip_refuses_audio_and_mixed_inputs_in_one_line(tiny_clip_dir: Path, digits) -> None:
    root, rows = digits
    model = build_encoder(_clip_cfg(tiny_clip_dir))
    audio = Media("audio", "a.wav", b"0" * 16, data=b"RIFF")
    with pytest.raises(ModelError, match="embeds image and text, not audio"):
        model.encode([audio])
    with pytest.raises(TypeError, match="one modality"):
        model.encode([*_items(root, [rows[0][0]]), "a text"])


def test_clip_loading_errors_are_one_line(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A text-only transformer is no dual encoder.
    with pytest.raises(ModelError) as info:
        build_encoder(_clip_cfg(tiny_bert_dir))
    assert "cannot be used as kind=clip" in str(info.value) and "\n" not in str(info.value)
    # Offline, a Hub id that is not cached: one line, and the way out.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        build_encoder(
            ModelConfig(name="hub_clip", name_or_path="embsel-tests/no-such-clip-3f9a", kind="clip")
        )
    message = str(info.value)
    assert "embsel-tests/no-such-clip-3f9a" in message and "model.name_or_path" in message
    assert "\n" not in message


def test_clip_pickled_weights_are_refused(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """safetensors only: a directory whose weights are a pickle (.bin) is refused, not unpickled."""
    import shutil

    import torch
    from safetensors.torch import load_file

    directory = tmp_path / "pickled"
    shutil.copytree(tiny_clip_dir, directory)
    torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelError) as info:
        build_encoder(_clip_cfg(directory))
    assert "safetensors" in str(info.value) and "\n" not in str(info.value)


def test_clip_identity_and_serving_settings(tiny_clip_dir: Path, tmp_path: Path) -> None:
    model = build_encoder(_clip_cfg(tiny_clip_dir, normalize=True, max_seq_length=16))
    assert model.identity["kind"] == "clip" and model.registrable
    assert (
        model.model.__class__.__name__ == "CLIPModel"
        and model.processor.__class__.__name__ == "CLIPProcessor"
    )
    settings = model.save_serving(tmp_path / "served")
    assert settings["module"] == "clip_forward" and settings["kind"] == "clip"
    assert settings["modalities"] == ["image", "text"] and settings["max_length"] == 16
    assert (tmp_path / "served" / "model.safetensors").is_file()
    assert not list((tmp_path / "served").glob("*.bin"))


# --- image_features ---------------------------------------------------------------------------


def _digits_split(digits) -> tuple[list[Media], list[Media], np.ndarray, np.ndarray]:
    """The demo layout's split: shuffled with seed 0, 900 train and the next 597 test."""
    root, rows = digits
    order = np.random.RandomState(0).permutation(len(rows))
    names = [rows[i][0] for i in order]
    labels = np.asarray([int(rows[i][1]) for i in order])
    items = _items(root, names[:1497])
    return items[:900], items[900:1497], labels[:900], labels[900:1497]


def _mteb_accuracy(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, n: int
) -> float:
    """MTEB's classification protocol (10 undersampled experiments, logistic regression, seed 42)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from embsel_mlflow.families.classification import experiment_samples

    scores = []
    for selected in experiment_samples(y_train.tolist(), n, 42, 10):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier = LogisticRegression(max_iter=100, random_state=42).fit(
                train[selected], y_train[selected]
            )
        scores.append(float((classifier.predict(test) == y_test).mean()))
    return float(np.mean(scores))


@pytest.mark.parametrize(
    ("features", "floor_8", "floor_16"),
    # measured 0.897 / 0.925 (pixels) and 0.925 / 0.943 (HOG); the issue's quick check: 0.889 / 0.924
    [("pixels", 0.88, 0.91), ("hog", 0.90, 0.93)],
)
def test_image_features_on_real_digits_reach_the_issue_accuracy(
    features: str, floor_8: float, floor_16: float, digits, tmp_path: Path
) -> None:
    train, test, y_train, y_test = _digits_split(digits)
    cfg = ModelConfig(
        name=f"image_{features}_pca",
        name_or_path=f"{features}-pca",
        kind="image_features",
        batch_size=256,
        image_features=ImageFeaturesConfig(features=features, image_size=32, dim=32),
    )
    cache = EmbeddingCache(tmp_path / "cache")
    unfitted = build_encoder(cfg, cache=cache)
    assert not unfitted.registrable
    with pytest.raises(ModelError, match="not fitted yet"):
        unfitted.encode(test[:2])
    model = unfitted.for_dataset(_task_data(train))
    assert (
        model.registrable
        and model.embedding_dim == 32
        and model.fitted_on == "digits train split (no labels) (900 images)"
    )
    train_embeddings, test_embeddings = model.encode(train), model.encode(test)
    assert _mteb_accuracy(train_embeddings, y_train, test_embeddings, y_test, 8) >= floor_8
    assert _mteb_accuracy(train_embeddings, y_train, test_embeddings, y_test, 16) >= floor_16

    # The fit is kept under the cache's models dir and reused: the same embeddings, no refit.
    kept = list((cache.models_dir / "image_features").glob("*.npz"))
    assert len(kept) == 1
    refitted = build_encoder(cfg, cache=cache).for_dataset(_task_data(train))
    assert np.array_equal(refitted.inner.forward.components, model.inner.forward.components)
    assert refitted.misses == 0 and np.array_equal(refitted.encode(test), test_embeddings)


def test_image_features_fit_on_images_only_and_dim_is_capped_by_samples(digits) -> None:
    train, _, _, _ = _digits_split(digits)
    cfg = ModelConfig(
        name="pixels",
        name_or_path="pixels-pca",
        kind="image_features",
        image_features=ImageFeaturesConfig(dim=32, whiten=True),
    )
    model = build_encoder(cfg).for_dataset(_task_data(train[:6]))
    assert model.embedding_dim == 5  # 6 images: at most 5 components with variance
    embedded = model.encode(train[:6])
    # whitened: each component has unit variance over the fit images
    assert np.allclose(embedded.std(axis=0, ddof=1), 1, atol=1e-3)

    # A dataset that gives texts to fit on is no image dataset.
    class TextFamily(ImagesFamily):
        def fit_texts(self, data: TaskData) -> tuple[list, str]:
            return ["a text"], "test texts"

    texts = TaskData("sts", "sts", "test", None, family=TextFamily([]))
    with pytest.raises(DataError, match="gives no images to fit image features on"):
        build_encoder(cfg).for_dataset(texts)
    with pytest.raises(DataError, match="cannot fit image features on 1 image"):
        build_encoder(cfg).for_dataset(_task_data(train[:1]))
    with pytest.raises(ModelError, match="embeds image, not text"):
        model.encode(["a handwritten digit"])


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (ImageFeaturesConfig(features="sift"), "model.image_features.features='sift'"),
        (ImageFeaturesConfig(dim=0), "dim must be >= 1"),
        (ImageFeaturesConfig(features="hog", image_size=8), "HOG needs image_size >="),
    ],
)
def test_image_features_bad_settings_are_one_line(settings: ImageFeaturesConfig, needle: str) -> None:
    cfg = ModelConfig(name="bad", name_or_path="pixels-pca", kind="image_features", image_features=settings)
    with pytest.raises(ConfigError) as info:
        build_encoder(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_saved_image_features_fit_loads_as_it_is(digits, tmp_path: Path) -> None:
    train, test, _, _ = _digits_split(digits)
    cfg = ModelConfig(
        name="hog",
        name_or_path="hog-pca",
        kind="image_features",
        normalize=True,
        image_features=ImageFeaturesConfig(features="hog", dim=16),
    )
    fitted = build_encoder(cfg).for_dataset(_task_data(train[:300]))
    settings = fitted.save_serving(tmp_path / "fit")
    assert settings["module"] == "image_features_forward" and settings["kind"] == "image_features"
    assert settings["requirements"] == ["pillow", "scikit-image"]
    # name_or_path naming the saved fit: that fit on every dataset, whatever the config says.
    loaded = build_encoder(
        ModelConfig(name="saved", name_or_path=str(tmp_path / "fit"), kind="image_features"),
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    other = loaded.for_dataset(_task_data(test))
    assert other.inner is loaded.inner and loaded.registrable
    assert np.abs(loaded.encode(test[:50]) - fitted.encode(test[:50])).max() < 1e-6
    assert np.allclose(np.linalg.norm(loaded.encode(test[:5]), axis=1), 1, atol=1e-5)


def test_base64_of_an_image_decodes_as_its_file(digits) -> None:
    """The served input forms go through the same decoder (media_io) as the files evaluation reads."""
    from embsel_mlflow.media import media_io

    root, rows = digits
    data = (root / rows[0][0]).read_bytes()
    from_file = np.asarray(media_io.open_image(media_io.decode_input(str(root / rows[0][0]))))
    from_b64 = np.asarray(media_io.open_image(media_io.decode_input(base64.b64encode(data).decode())))
    assert np.array_equal(from_file, from_b64)
