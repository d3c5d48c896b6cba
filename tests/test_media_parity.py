"""On the same tiny CLIP embeddings, our image tasks' numbers equal MTEB's (and pytrec_eval's).

A seeded tiny ``CLIPModel`` (random weights, built from transformers configs) embeds real
digits (scikit-learn's scans, written as PNGs) with ``get_image_features`` and captions with
``get_text_features``, once. The very same vectors are fed to our families (loaded from csv
files with ``families.load_task_data``, images decoded by ``media.decode``) and to MTEB 2.x's
own AbsTask classes (MTEB hands its model DataLoaders of PIL images and texts). MTEB and
pytrec_eval are test extras: the independent references, never imported by the library.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import DataConfig, EvaluationConfig, TableConfig
from embsel_mlflow.families import build_task, load_task_data
from embsel_mlflow.media.decode import load_images
from embsel_mlflow.media.items import TEXT, modality_of
from tests.test_media_families import DIGIT_WORDS, write_digits

mteb = pytest.importorskip("mteb", reason="mteb (a test extra) is the reference implementation")
pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval-terrier (a test extra) is the reference")

TOLERANCE = 1e-6  # the bar (measured here: 0 for every score, up to 2e-16 for retrieval means)
K_VALUES = [1, 3, 5, 10, 100]
IMAGE_SIZE = 32


def _pixel_key(image) -> bytes:
    """An image's identity for the embedding table: its RGB pixels (MTEB and we decode the same PNG)."""
    rgb = image.convert("RGB")
    return rgb.size[0].to_bytes(2, "big") + rgb.size[1].to_bytes(2, "big") + rgb.tobytes()


class TinyClip:
    """A seeded random-weights CLIPModel with a word-level tokenizer (the vocabulary of the test's texts)."""

    def __init__(self, words: list[str]) -> None:
        import torch
        from transformers import CLIPConfig, CLIPModel

        # 0 pad, 1 eos, 2 bos (eos id 2 would select transformers' legacy pooling at the largest id)
        self.vocab = {word: index + 3 for index, word in enumerate(sorted(set(words)))}
        tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
        config = CLIPConfig(
            text_config={
                **tower,
                "vocab_size": len(self.vocab) + 3,
                "max_position_embeddings": 16,
                "pad_token_id": 0,
                "bos_token_id": 2,
                "eos_token_id": 1,
            },
            vision_config={**tower, "image_size": IMAGE_SIZE, "patch_size": 8},
            projection_dim=16,
        )
        torch.manual_seed(0)
        self.model = CLIPModel(config).eval()

    def image_features(self, images: list) -> np.ndarray:
        import torch
        from PIL import Image

        pixels = np.stack(
            [
                np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
                for image in images
            ]
        )
        tensor = torch.tensor((pixels / 255.0 - 0.5) / 0.5, dtype=torch.float32).permute(0, 3, 1, 2)
        with torch.no_grad():
            return _tensor(self.model.get_image_features(pixel_values=tensor))

    def text_features(self, texts: list[str]) -> np.ndarray:
        import torch

        rows = [[2, *(self.vocab[word] for word in text.split()), 1] for text in texts]
        width = max(map(len, rows))
        ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        with torch.no_grad():
            return _tensor(self.model.get_text_features(input_ids=ids, attention_mask=mask))


def _tensor(output) -> np.ndarray:
    """transformers 5 returns a model output whose pooled output is the projected features."""
    tensor = output if hasattr(output, "numpy") else output.pooler_output
    return tensor.numpy().astype(np.float32)


class Tables:
    """Every embedding of the test, computed once: images by pixels, texts by string."""

    def __init__(self, clip: TinyClip, image_paths: list[Path], texts: list[str]) -> None:
        from PIL import Image

        images = [Image.open(path) for path in image_paths]
        self.images = dict(zip(map(_pixel_key, images), clip.image_features(images), strict=True))
        self.texts = dict(zip(texts, clip.text_features(texts), strict=True))


class TableEncoder:
    """Our encoder protocol over the tables; media items are decoded by the library's own path."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def encode(self, items, *, role=None, show_progress=False) -> np.ndarray:
        if modality_of(items) == TEXT:
            return np.stack([self.tables.texts[text] for text in items])
        return np.stack([self.tables.images[_pixel_key(image)] for image in load_images(items)])


class MtebTableModel:
    """MTEB's EncoderProtocol over the same tables: MTEB passes DataLoaders of images or texts."""

    def __init__(self, tables: Tables) -> None:
        from mteb.models.model_meta import ModelMeta

        self.tables = tables
        self._meta = ModelMeta.create_empty()

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        rows = []
        for batch in inputs:
            if "image" in batch:
                rows += [self.tables.images[_pixel_key(image)] for image in batch["image"]]
            else:
                rows += [self.tables.texts[text] for text in batch["text"]]
        return np.stack(rows)

    def similarity(self, embeddings1, embeddings2):
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    @property
    def mteb_model_meta(self):
        return self._meta


# --------------------------------------------------------------------------- fixture


def _captions(label: str) -> list[str]:
    return [f"a handwritten digit {label}", f"a photo of the number {DIGIT_WORDS[int(label)]}"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """300 real digits (train 200 / test 100) as PNGs under a data root, their csv files, the tables."""
    root = tmp_path_factory.mktemp("digits")
    rows = write_digits(root, count=300)
    train, test = rows[:200], rows[200:]
    _csv(root / "train.csv", ["image", "label"], train)
    _csv(root / "test.csv", ["image", "label"], test)
    pairs = [(image, caption) for image, label in test[:60] for caption in _captions(label)]
    _csv(root / "pairs.csv", ["image", "text"], pairs)
    prompts = {n: [f"a handwritten digit {d}" for d in range(n)] for n in (2, 10)}
    texts = sorted({caption for _, caption in pairs} | set(prompts[10]))
    clip = TinyClip([word for text in texts for word in text.split()])
    tables = Tables(clip, [root / image for image, _ in rows], texts)
    return {"root": root, "train": train, "test": test, "pairs": pairs, "prompts": prompts, "tables": tables}


def _csv(path: Path, header: list[str], rows) -> None:
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _data(digits, task: str, splits: dict[str, str], **extra) -> DataConfig:
    return DataConfig(
        name="digits",
        task=task,
        root=str(digits["root"]),
        splits={name: TableConfig(path=path) for name, path in splits.items()},
        **extra,
    )


def _ours(digits, cfg: DataConfig, **evaluation):
    data = load_task_data(cfg)
    task = build_task(data, EvaluationConfig(show_progress=False, **evaluation))
    return task.evaluate(TableEncoder(digits["tables"]))


def _mteb(task, digits, prediction_folder: Path | None = None) -> dict:
    scores = task.evaluate(
        MtebTableModel(digits["tables"]),
        split="test",
        encode_kwargs={"batch_size": 16, "show_progress_bar": False},
        prediction_folder=prediction_folder,
    )
    return dict(scores["default"])


def _images(digits, rows) -> list:
    from PIL import Image

    return [Image.open(digits["root"] / image) for image, _ in rows]


def _metadata(mock_cls, name: str, **update):
    return mock_cls.metadata.model_copy(update={"name": name, **update})


def _assert_close(ours: dict, theirs: dict, keys, tol: float = TOLERANCE) -> None:
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], abs=tol, rel=0), key


CLASSIFICATION_KEYS = [
    "accuracy",
    "f1",
    "f1_weighted",
    "precision",
    "precision_weighted",
    "recall",
    "recall_weighted",
]


# --------------------------------------------------------------------------- classification


def test_image_classification_equals_mteb(digits):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.mocks.mock_tasks.classification import MockImageClassificationTask

    class ParityImageClassification(AbsTaskClassification):
        metadata = _metadata(MockImageClassificationTask, "ParityImageClassification")
        input_column_name = "image"

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict(
                {
                    split: Dataset.from_dict(
                        {"image": _images(digits, rows), "label": [int(label) for _, label in rows]}
                    )
                    for split, rows in (("train", digits["train"]), ("test", digits["test"]))
                }
            )
            self.data_loaded = True

    ours = _ours(digits, _data(digits, "image_classification", {"train": "train.csv", "test": "test.csv"}))
    theirs = _mteb(ParityImageClassification(), digits)
    _assert_close(ours.scores, theirs, CLASSIFICATION_KEYS)
    assert theirs["main_score"] == pytest.approx(ours.main_score, abs=TOLERANCE, rel=0)
    # the defaults are MTEB's (10 experiments, 8 samples per label); a random tiny CLIP still
    # separates digit scans somewhat: neither degenerate nor perfect
    assert 0.2 < ours.main_score < 1.0
    assert len(ours.per_item) == len(digits["test"])


# --------------------------------------------------------------------------- zero-shot


@pytest.mark.parametrize("n_classes", [2, 10])
def test_zero_shot_image_classification_equals_mteb(digits, n_classes, tmp_path):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.zeroshot_classification import AbsTaskZeroShotClassification
    from mteb.mocks.mock_tasks.zeroshot_classification import MockZeroShotClassificationTask

    rows = [row for row in digits["test"] if int(row[1]) < n_classes]
    _csv(digits["root"] / f"zero_shot_{n_classes}.csv", ["image", "label"], rows)
    prompts = digits["prompts"][n_classes]

    class ParityZeroShot(AbsTaskZeroShotClassification):
        metadata = _metadata(
            MockZeroShotClassificationTask,
            "ParityZeroShot",
            modalities=["image", "text"],  # MTEB's image-text path: softmax(100 x cosine)
            category="i2t",
        )

        def load_data(self, num_proc=None, **kwargs):
            frame = {"image": _images(digits, rows), "label": [int(label) for _, label in rows]}
            self.dataset = DatasetDict({"test": Dataset.from_dict(frame)})
            self.data_loaded = True

        def get_candidate_labels(self):
            return prompts

    cfg = _data(
        digits,
        "zero_shot_image_classification",
        {"test": f"zero_shot_{n_classes}.csv"},
        label_template="a handwritten digit {label}",
    )
    ours = _ours(digits, cfg)
    theirs = _mteb(ParityZeroShot(), digits, prediction_folder=tmp_path)
    keys = CLASSIFICATION_KEYS + (["ap", "ap_weighted"] if n_classes == 2 else [])
    _assert_close(ours.scores, theirs, keys)
    if n_classes > 2:
        assert "ap" not in ours.scores and theirs["ap"] is None
    # the probabilities themselves: the per-item probability of the predicted class
    saved = json.loads((tmp_path / "ParityZeroShot_predictions.json").read_text())["default"]["test"]
    theirs_probability = np.max(np.asarray(saved), axis=1)
    assert ours.per_item["probability"].to_numpy() == pytest.approx(theirs_probability, abs=TOLERANCE, rel=0)
    # not degenerate: the probabilities vary (two classes: ap ranks by them); ten classes: the
    # random CLIP predicts several of them
    assert ours.per_item["probability"].std() > 1e-3
    if n_classes > 2:
        assert ours.per_item["predicted"].nunique() > 1


# --------------------------------------------------------------------------- retrieval


def _mteb_retrieval(digits, category: str):
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
    from PIL import Image

    pairs = digits["pairs"]
    images = list(dict.fromkeys(image for image, _ in pairs))
    captions = list(dict.fromkeys(caption for _, caption in pairs))
    image_side = Dataset.from_dict(
        {
            "id": [f"image:{image}" for image in images],
            "image": [Image.open(digits["root"] / i) for i in images],
        }
    )
    text_side = Dataset.from_dict({"id": [f"text:{c}" for c in captions], "text": captions})
    qrels: dict[str, dict[str, int]] = {}
    for image, caption in pairs:
        query, document = (f"image:{image}", f"text:{caption}")
        if category == "t2i":
            query, document = document, query
        qrels.setdefault(query, {})[document] = 1
    queries, corpus = (image_side, text_side) if category == "i2t" else (text_side, image_side)

    class ParityCrossModalRetrieval(AbsTaskRetrieval):
        metadata = _metadata(
            MockRetrievalTask, f"ParityRetrieval{category}", category=category, modalities=["image", "text"]
        )

        def load_data(self, num_proc=None, **kwargs):
            split = {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    task = ParityCrossModalRetrieval()
    task.k_values = K_VALUES
    task._top_k = max(K_VALUES)
    return task, qrels


@pytest.mark.parametrize(
    ("task", "category"), [("image_to_text_retrieval", "i2t"), ("text_to_image_retrieval", "t2i")]
)
def test_image_text_retrieval_equals_mteb(digits, task, category, tmp_path):
    result = _ours(digits, _data(digits, task, {"test": "pairs.csv"}), k_values=K_VALUES)
    ours = result.scores
    mteb_task, qrels = _mteb_retrieval(digits, category)
    theirs = _mteb(mteb_task, digits, prediction_folder=tmp_path)
    assert sorted(result.per_item["query_id"]) == sorted(qrels)  # same queries, same ids

    # MTEB rounds ndcg/map/recall/precision to 5 decimals: equal after the same rounding
    for k in K_VALUES:
        for family in ("ndcg_at", "map_at", "recall_at", "precision_at"):
            assert round(ours[f"{family}_{k}"], 5) == theirs[f"{family}_{k}"], (family, k)
        assert ours[f"mrr_at_{k}"] == pytest.approx(theirs[f"mrr_at_{k}"], abs=TOLERANCE, rel=0)
    assert theirs["main_score"] == round(ours["ndcg_at_10"], 5)

    # unrounded: MTEB's own ranking (its saved run) scored by pytrec_eval, against our scores
    run = json.loads((tmp_path / f"ParityRetrieval{category}_predictions.json").read_text())["default"][
        "test"
    ]
    measures = {f"{m}." + ",".join(map(str, K_VALUES)) for m in ("ndcg_cut", "map_cut", "recall", "P")}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at"}
    for trec, family in names.items():
        for k in K_VALUES:
            mean = np.mean([reference[query][f"{trec}_{k}"] for query in qrels])
            assert ours[f"{family}_{k}"] == pytest.approx(mean, abs=TOLERANCE, rel=0), (family, k)
    # and the same top-10 documents with the same cosine scores, query by query
    for _, row in result.per_item.iterrows():
        theirs_top = sorted(run[row["query_id"]].items(), key=lambda hit: -hit[1])[:10]
        assert set(row["top_doc_ids"]) == {doc for doc, _ in theirs_top}
    assert 0.0 < ours["ndcg_at_10"] < 1.0  # neither empty nor perfect


# --------------------------------------------------------------------------- clustering


def test_image_clustering_equals_mteb(digits):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy
    from mteb.mocks.mock_tasks.clustering import MockImageClusteringTask

    rows = digits["test"]

    class ParityImageClustering(AbsTaskClusteringLegacy):
        metadata = _metadata(MockImageClusteringTask, "ParityImageClustering")
        input_column_name = "image"
        label_column_name = "label"

        def load_data(self, num_proc=None, **kwargs):
            frame = {"image": _images(digits, rows), "label": [int(label) for _, label in rows]}
            self.dataset = DatasetDict({"test": Dataset.from_dict(frame)})
            self.data_loaded = True

    ours = _ours(digits, _data(digits, "image_clustering", {"test": "test.csv"}))
    theirs = _mteb(ParityImageClustering(), digits)
    _assert_close(ours.scores, theirs, ["v_measure", "nmi", "ari", "cluster_accuracy"])
    assert 0.1 < ours.main_score < 1.0
