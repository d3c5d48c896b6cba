"""Contrastive image–text training (``training/contrastive.py``) of tiny random-weights CLIP and SigLIP
models, built on the fly and loaded through transformers' Auto classes as a real checkpoint is, on
real PNG files (coloured shapes drawn with Pillow) and their captions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embsel_mlflow.config import MediaConfig, TrainConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.media.paths import make_media
from embsel_mlflow.training.contrastive import (
    ImageTextPairs,
    batch_inputs,
    check_pair_batches,
    contrastive_loss,
    epoch_batches,
    pairs_from_columns,
    train_contrastive,
)

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (40, 60, 220), "yellow": (235, 220, 40)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 9, "large": 15}  # half-width in pixels on a 32 x 32 canvas
IMAGE_SIZE = 32
SEED = 0


def _draw(path: Path, colour: tuple[int, int, int], shape: str, half: int) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    c = IMAGE_SIZE // 2
    box = (c - half, c - half, c + half, c + half)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(c, c - half), (c - half, c + half), (c + half, c + half)], fill=colour)
    image.save(path)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ImageTextPairs:
    """24 real PNG files (4 colours x 3 shapes x 2 sizes), each with its caption, as checked Media."""
    root = tmp_path_factory.mktemp("shapes")
    (root / "images").mkdir()
    images, texts = [], []
    for size, half in SIZES.items():
        for colour, rgb in COLOURS.items():
            for shape in SHAPES:
                name = f"images/{size}_{colour}_{shape}.png"
                _draw(root / name, rgb, shape, half)
                row = len(texts)
                images.append(
                    make_media(name, "image", root=root, row=row, where="shapes", limits=MediaConfig())
                )
                texts.append(f"a {size} {colour} {shape}")
    return ImageTextPairs(images, texts, "shapes/train (image_to_text_retrieval)")


def _tokenizer(texts: list[str], max_length: int) -> Any:
    """A word-level tokenizer learnt on the captions with the `tokenizers` trainer, as a fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]",
        special_tokens=[("[BOS]", tok.token_to_id("[BOS]")), ("[EOS]", tok.token_to_id("[EOS]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_length,
    )


MAX_TEXT = 8
TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def _save_tiny(directory: Path, kind: str, texts: list[str]) -> Path:
    """A tiny random-weights CLIPModel or SiglipModel + its processor, saved as a checkpoint (safetensors)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
    )

    tokenizer = _tokenizer(texts, MAX_TEXT)
    ids = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    text = {**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": MAX_TEXT, **ids}
    vision = {**TOWER, "image_size": IMAGE_SIZE, "patch_size": 8}
    torch.manual_seed(SEED)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    if kind == "clip":
        model: Any = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        images = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=size)
        processor: Any = CLIPProcessor(image_processor=images, tokenizer=tokenizer)
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        with torch.no_grad():  # the SigLIP paper's initial temperature and bias (transformers starts at 0)
            model.logit_scale.fill_(np.log(10.0))
            model.logit_bias.fill_(-10.0)
        processor = SiglipProcessor(image_processor=SiglipImageProcessorPil(size=size), tokenizer=tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _load(directory: Path) -> tuple[Any, Any]:
    """As a real checkpoint is loaded: transformers' Auto classes on the saved directory."""
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(directory).eval(), AutoProcessor.from_pretrained(directory)


@pytest.fixture(scope="module")
def tiny_dirs(shapes: ImageTextPairs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        kind: _save_tiny(tmp_path_factory.mktemp(kind), kind, shapes.texts) for kind in ("clip", "siglip")
    }


def _embeddings(model: Any, processor: Any, pairs: ImageTextPairs) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length (image, text) embeddings of every pair, from the model's own projection heads."""
    import torch

    inputs = batch_inputs(processor, model, pairs.images, pairs.texts)
    with torch.no_grad():
        out = model(**inputs)
    return out.image_embeds.numpy(), out.text_embeds.numpy()


def _recall_at_1(model: Any, processor: Any, pairs: ImageTextPairs) -> tuple[float, float]:
    """(image->text, text->image) share of queries whose own pair ranks first by cosine similarity."""
    images, texts = _embeddings(model, processor, pairs)
    similarity = images @ texts.T
    target = np.arange(len(pairs))
    return float(np.mean(similarity.argmax(1) == target)), float(np.mean(similarity.argmax(0) == target))


SETTINGS = TrainConfig(
    batch_size=8, learning_rate=2e-3, epochs=25, warmup_ratio=0.1, weight_decay=0.01, seed=7, logging_steps=5
)


class ListSink:
    def __init__(self) -> None:
        self.entries: list[tuple[str, float, int]] = []

    def log_metric_steps(self, entries: list[tuple[str, float, int]]) -> None:
        self.entries += entries

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(step, value) for name, value, step in self.entries if name == key]


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_training_lowers_the_loss_and_improves_retrieval_on_the_training_pairs(
    kind: str, tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    model, processor = _load(tiny_dirs[kind])
    before = _recall_at_1(model, processor, shapes)
    scale_before = float(model.logit_scale.detach())
    sink = ListSink()
    outcome = train_contrastive(model, processor, shapes, SETTINGS, sink=sink, show_progress=False)
    after = _recall_at_1(model, processor, shapes)
    losses = outcome.losses
    print(f"{kind}: loss {np.mean(losses[:3]):.4f} -> {np.mean(losses[-3:]):.4f}; ")
    print(f"recall@1 i->t {before[0]:.3f} -> {after[0]:.3f}, t->i {before[1]:.3f} -> {after[1]:.3f}")
    assert outcome.global_step == len(losses) == 25 * 3  # 24 pairs in batches of 8, 25 epochs
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert after[0] > before[0] and after[1] > before[1]
    assert min(after) >= 0.5
    assert float(model.logit_scale.detach()) != scale_before  # the temperature is learnt too
    assert not model.training  # handed back ready to encode
    logged = sink.series("train/loss")
    assert [step for step, _ in logged] == list(range(5, 76, 5))
    assert logged[-1][1] == pytest.approx(np.mean(losses[-5:]))  # the mean over the logging window


def _short(**changes: Any) -> TrainConfig:
    return dataclasses.replace(SETTINGS, **{"max_steps": 4, "logging_steps": 1, **changes})


def test_the_loss_is_clips_symmetric_infonce_with_its_learnable_scale(
    tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    """What training minimises, recomputed from the embeddings: CLIP's cross-entropy both ways."""
    import torch

    model, processor = _load(tiny_dirs["clip"])
    with torch.no_grad():
        model.logit_scale.fill_(np.log(30.0))
    inputs = batch_inputs(processor, model, shapes.images[:8], shapes.texts[:8])
    images, texts = _embeddings(
        model, processor, dataclasses.replace(shapes, images=shapes.images[:8], texts=shapes.texts[:8])
    )
    logits = torch.from_numpy(30.0 * texts @ images.T)
    target = torch.arange(8)
    expected = (
        torch.nn.functional.cross_entropy(logits, target)
        + torch.nn.functional.cross_entropy(logits.T, target)
    ) / 2
    with torch.no_grad():
        assert float(contrastive_loss(model, inputs)) == pytest.approx(float(expected), rel=1e-5)


def test_the_siglip_loss_is_the_pairwise_sigmoid_loss(
    tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    import torch

    model, processor = _load(tiny_dirs["siglip"])
    inputs = batch_inputs(processor, model, shapes.images[:8], shapes.texts[:8])
    assert inputs["input_ids"].shape[1] == MAX_TEXT  # SigLIP pools the last position: padded to max length
    images, texts = _embeddings(
        model, processor, dataclasses.replace(shapes, images=shapes.images[:8], texts=shapes.texts[:8])
    )
    logits = torch.from_numpy(10.0 * texts @ images.T - 10.0)
    signs = 2 * torch.eye(8) - 1
    expected = -torch.nn.functional.logsigmoid(signs * logits).sum(1).mean()
    with torch.no_grad():
        assert float(contrastive_loss(model, inputs)) == pytest.approx(float(expected), rel=1e-5)


def _state(model: Any) -> dict[str, np.ndarray]:
    return {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}


def test_a_seed_gives_the_same_training_and_another_seed_another(
    tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    runs = []
    for seed in (3, 3, 4):
        model, processor = _load(tiny_dirs["clip"])
        outcome = train_contrastive(model, processor, shapes, _short(seed=seed), show_progress=False)
        runs.append((outcome.losses, _state(model)))
    (losses, state), (same_losses, same_state), (other_losses, _) = runs
    assert losses == same_losses  # bit for bit: batch order, dropout and optimiser follow the seed
    assert all(np.array_equal(state[name], same_state[name]) for name in state)
    assert losses != other_losses


def test_no_batch_repeats_a_text_or_an_image(shapes: ImageTextPairs) -> None:
    """Captions repeated 3 times (as class prompts would be): every batch still holds distinct ones."""
    repeated = ImageTextPairs(
        shapes.images[:12] * 2, [text.split()[2] for text in shapes.texts[:24]], "repeated/train"
    )  # 24 pairs, 4 distinct texts ("red", ...), each image twice
    rng = np.random.default_rng(0)
    for _ in range(5):
        batches = epoch_batches(repeated, 4, "no_duplicates", rng)
        for batch in batches:
            assert len({repeated.texts[i] for i in batch}) == len(batch)
            assert len({repeated.images[i].digest for i in batch}) == len(batch)
            assert len(batch) >= 2
        assert len({i for batch in batches for i in batch}) >= 20  # nearly every pair, once
    plain = epoch_batches(repeated, 5, "batch_sampler", rng)
    assert sorted(i for batch in plain for i in batch) == list(range(24))  # every pair, last batch of 4
    check_pair_batches(repeated, 4, "no_duplicates")
    with pytest.raises(DataError, match=r"cannot fill a batch of 5 pairs .*at most 4"):
        check_pair_batches(repeated, 5, "no_duplicates")
    check_pair_batches(repeated, 5, "batch_sampler")
    with pytest.raises(DataError, match="fewer than one batch"):
        check_pair_batches(repeated, 32, "batch_sampler")
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        check_pair_batches(repeated, 1, "batch_sampler")


@pytest.mark.parametrize(
    ("changes", "steps"),
    [
        ({"epochs": 2.0, "max_steps": -1}, 6),  # 3 batches of 8 per epoch
        ({"epochs": 1.5, "max_steps": -1}, 5),  # ceil(1.5 x 3), as transformers counts
        ({"epochs": 2.0, "max_steps": -1, "gradient_accumulation_steps": 3}, 2),  # a step = 3 batches
        ({"epochs": 9.0, "max_steps": 2}, 2),  # max_steps > 0 overrides epochs
    ],
)
def test_epochs_max_steps_and_accumulation_set_the_step_count(
    changes: dict[str, Any], steps: int, tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    model, processor = _load(tiny_dirs["clip"])
    outcome = train_contrastive(model, processor, shapes, _short(**changes), show_progress=False)
    assert outcome.global_step == len(outcome.losses) == steps


@pytest.mark.parametrize(("eval_steps", "expected"), [(None, [3, 6]), (2, [2, 4, 6]), (0, [])])
def test_validation_runs_per_epoch_or_every_n_steps_and_is_logged(
    eval_steps: int | None, expected: list[int], tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    model, processor = _load(tiny_dirs["clip"])
    calls: list[bool] = []

    def validate() -> tuple[float, dict[str, float]]:
        calls.append(model.training)
        i2t, t2i = _recall_at_1(model, processor, shapes)
        return i2t, {"recall_at_1": i2t, "text_recall_at_1": t2i}

    sink = ListSink()
    settings = _short(epochs=2.0, max_steps=-1, eval_steps=eval_steps)
    outcome = train_contrastive(model, processor, shapes, settings, sink=sink, validate=validate)
    assert [step for step, _ in sink.series("validation/main_score")] == expected
    assert [step for step, _ in sink.series("validation/text_recall_at_1")] == expected
    assert calls == [False] * len(expected)  # scored in eval mode
    assert outcome.validation_step == (expected[-1] if expected else None)
    if expected:
        assert outcome.validation_score == sink.series("validation/main_score")[-1][1]
    for key in ("train/learning_rate", "train/grad_norm", "train/epoch", "train/logit_scale"):
        assert [step for step, _ in sink.series(key)] == list(range(1, 7)), key
    assert sink.series("train/epoch")[-1][1] == pytest.approx(2.0)
    assert sink.series("train/average_loss") == [(6, pytest.approx(np.mean(outcome.losses)))]


def test_sigterm_finishes_the_step_and_stops(tiny_dirs: dict[str, Path], shapes: ImageTextPairs) -> None:
    """A real SIGTERM to this process during step 2: training stops after it, the signal reported."""
    import os
    import signal

    model, processor = _load(tiny_dirs["clip"])

    def validate() -> tuple[float, dict[str, float]]:
        os.kill(os.getpid(), signal.SIGTERM)
        return 0.0, {}

    settings = _short(max_steps=10, eval_steps=2)
    outcome = train_contrastive(model, processor, shapes, settings, validate=validate, show_progress=False)
    assert outcome.stopped_by == signal.SIGTERM and outcome.global_step == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # pytest's handler back in place
    assert not model.training


def test_clips_temperature_is_capped_at_100(tiny_dirs: dict[str, Path], shapes: ImageTextPairs) -> None:
    import torch

    model, processor = _load(tiny_dirs["clip"])
    with torch.no_grad():
        model.logit_scale.fill_(np.log(100.0))  # where released CLIP checkpoints sit
    train_contrastive(model, processor, shapes, _short(learning_rate=0.05), show_progress=False)
    assert float(model.logit_scale.detach()) <= np.log(100.0) + 1e-6


def test_pairs_come_from_one_image_and_one_text_column_in_either_order(shapes: ImageTextPairs) -> None:
    for columns in (
        {"anchor": shapes.images, "positive": shapes.texts},
        {"q": shapes.texts, "d": shapes.images},
    ):
        pairs = pairs_from_columns(columns, "shapes/train")
        assert pairs.images == shapes.images and pairs.texts == shapes.texts
    with pytest.raises(ConfigError, match=r"needs \(image, text\) pairs, but the pairs have columns a, b"):
        pairs_from_columns({"a": shapes.images, "b": shapes.images}, "digits/train (image_classification)")
    with pytest.raises(ConfigError, match="needs"):
        pairs_from_columns({"a": shapes.texts, "b": shapes.texts}, "demo/train (retrieval)")


def test_a_model_without_a_contrastive_loss_is_refused(shapes: ImageTextPairs, tmp_path: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    _, processor = _load(_save_tiny(tmp_path, "clip", shapes.texts))
    vision = CLIPVisionModel(CLIPVisionConfig(**TOWER, image_size=IMAGE_SIZE, patch_size=8))
    with pytest.raises(ConfigError, match="CLIPVisionModel has no contrastive loss"):
        train_contrastive(vision, processor, shapes, _short())


# --- `embsel train` with model.kind=clip on image-text pairs (needs the clip kind and the
# image_to_text_retrieval family: the kimage and fams branches) ----------------------------------


def _branches_merged() -> bool:
    import importlib.util

    from embsel_mlflow.families import FAMILIES

    return importlib.util.find_spec("embsel_mlflow.models.clip") is not None and (
        "image_to_text_retrieval" in FAMILIES
    )


needs_media_kinds = pytest.mark.skipif(
    not _branches_merged(), reason="needs model.kind=clip and the image_to_text_retrieval family"
)
DIGITS_TRAIN, DIGITS_TEST = 200, 100


def _digit_captions(root: Path) -> Path:
    """Real scikit-learn digits as PNGs with "a handwritten digit N" captions; a data config for them."""
    import csv

    from tests.tiny_media_models import write_digit_pngs

    rows = write_digit_pngs(root / "images", DIGITS_TRAIN + DIGITS_TEST)
    for name, part in (("train", rows[:DIGITS_TRAIN]), ("test", rows[DIGITS_TRAIN:])):
        with (root / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "text"])
            writer.writerows([(f"images/{image}", f"a handwritten digit {label}") for image, label in part])
    conf = root / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "digit_captions.yaml").write_text(
        "name: digit_captions\n"
        "task: image_to_text_retrieval\n"
        f"root: {root}\n"
        "splits:\n  train: {path: train.csv}\n  test: {path: test.csv}\n"
    )
    return root / "conf"


def _clip_args(model_dir: Path, conf: Path, store: Path) -> list[str]:
    return [
        "model=clip_vit_b32",
        f"model.name_or_path={model_dir}",
        "model.device=cpu",
        f"hydra.searchpath=[file://{conf}]",
        "data=digit_captions",
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        "evaluation.show_progress=false",
        "train.batch_size=10",  # 10 distinct captions: a batch never repeats one (no_duplicates)
        "train.learning_rate=0.002",
        "train.logging_steps=1",
    ]


@pytest.fixture(scope="module")
def clip_trained(tmp_path_factory: pytest.TempPathFactory):
    """One `train` of a tiny CLIP on real digits with captions, through the library call."""
    from embsel_mlflow.config import TrainJobConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.jobs.train import train_in_run
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from tests.tiny_media_models import build_tiny_clip

    cwd = tmp_path_factory.mktemp("clip_train")
    conf = _digit_captions(cwd / "digits")
    model_dir = build_tiny_clip(cwd / "tiny_clip")
    overrides = [*_clip_args(model_dir, conf, cwd), "train.epochs=6", "train.system_metrics_interval_s=0.1"]
    cfg = compose_config("train", overrides)
    job = to_job_config(cfg, TrainJobConfig, "train")
    with tracked_run(job.tracking, entry_point="train", run_name="tiny clip train") as run:
        log_config(run, cfg, overrides)
        result = train_in_run(run, job)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (record,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return cwd, client, record, result, model_dir, conf


@needs_media_kinds
def test_clip_train_run_logs_baseline_tuned_delta_and_the_curve(clip_trained) -> None:
    _, client, run, result, _, _ = clip_trained
    metrics = run.data.metrics
    baseline, tuned = result.baseline.main_score, result.result.main_score
    print(f"digits i2t nDCG@10: baseline {baseline:.4f} -> tuned {tuned:.4f}")
    assert run.info.status == "FINISHED"
    assert run.data.tags["embsel.train.pairs"] == "media_text"
    assert metrics["train/pairs"] == DIGITS_TRAIN - round(DIGITS_TRAIN * 0.1)  # validation held out
    assert metrics["baseline/test/main_score"] == pytest.approx(result.baseline.main_score)
    assert metrics["test/main_score"] == pytest.approx(result.result.main_score)
    assert metrics["test/ndcg_at_10"] == metrics["test/main_score"]  # evaluate's own metrics, same path
    delta = metrics["delta/test/main_score"]
    assert delta == pytest.approx(metrics["test/main_score"] - metrics["baseline/test/main_score"])
    assert delta > 0.05  # the tuned model retrieves held-out digits' captions better
    assert metrics["delta/test/main_score_ci_low"] <= delta <= metrics["delta/test/main_score_ci_high"]
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 6 * 18  # 180 pairs in batches of 10
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert len(client.get_metric_history(run.info.run_id, "validation/main_score")) == 6  # once per epoch
    assert result.objective == pytest.approx(metrics["validation/main_score"])
    params = run.data.params
    assert params["train_args.loss"] == "clip_infonce" and params["train_args.trainer"] == "contrastive"
    assert params["train_args.learning_rate"] == "0.002"
    assert any(key.startswith("system/") for key in metrics)


@needs_media_kinds
def test_the_tuned_clip_is_logged_once_and_scores_the_same_via_from_run(clip_trained) -> None:
    """`model=from_run` loads the logged tuned model; evaluate scores it as the train run did."""
    import os

    from embsel_mlflow.entrypoints import evaluate as evaluate_entrypoint

    cwd, client, run, result, _, conf = clip_trained
    assert run.data.tags["embsel.model_uri"] == f"runs:/{run.info.run_id}/model"
    assert result.encoder.identity["fine_tuned_in_run"] == run.info.run_id
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        args = ["model=from_run", f"model.run_id={run.info.run_id}", f"hydra.searchpath=[file://{conf}]"]
        args += [
            "data=digit_captions",
            "evaluation.show_progress=false",
            "tracking.experiment=from_run",
        ]
        assert evaluate_entrypoint.main([*args, f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"]) == 0
    finally:
        os.chdir(previous)
    (evaluated,) = client.search_runs([client.get_experiment_by_name("from_run").experiment_id])
    assert evaluated.data.metrics["main_score"] == pytest.approx(
        run.data.metrics["test/main_score"], abs=1e-6
    )


def _train_main(args: list[str], cwd: Path) -> int:
    import os

    from embsel_mlflow.entrypoints import train as train_entrypoint

    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return train_entrypoint.main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(previous)


CLIP_BAD_INPUT = {
    "a caption repeated in every batch": (
        ["train.batch_size=11"],
        "the no_duplicates sampler cannot fill a batch of 11 pairs without repeating a text or an image "
        "(10 distinct texts); lower train.batch_size to at most 10",
    ),
    "a text loss": (["train/loss=cosent"], "trains a dual encoder with its own contrastive loss"),
    "early stopping without checkpoints": (
        ["train.early_stopping_patience=2"],
        "keeps no checkpoints to go back to: drop train.early_stopping_patience",
    ),
    "a clip model on text pairs": (
        ["data=demo_retrieval", "data.train_split=test"],
        "cannot be fine-tuned on text pairs",
    ),
}


@needs_media_kinds
@pytest.mark.parametrize("case", list(CLIP_BAD_INPUT))
def test_clip_bad_input_is_one_line_and_a_failed_run_before_any_step(
    case: str, clip_trained, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd, client, _, _, model_dir, conf = clip_trained
    extra, message = CLIP_BAD_INPUT[case]
    experiment = f"clip_bad_{list(CLIP_BAD_INPUT).index(case)}"
    args = [*_clip_args(model_dir, conf, cwd), *extra, f"tracking.experiment={experiment}"]
    assert _train_main(args, cwd) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED" and message in run.data.tags["error"]
    assert not any(key.startswith("train/loss") for key in run.data.metrics)


@needs_media_kinds
def test_a_text_model_on_image_text_pairs_is_refused(
    clip_trained, tiny_st_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd, _, _, _, _, conf = clip_trained
    args = [*_clip_args(tiny_st_dir, conf, cwd), "model=minilm", f"model.name_or_path={tiny_st_dir}"]
    args += ["model.offline=null", "model.revision=null", "tracking.experiment=clip_text_model"]
    assert _train_main(args, cwd) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "cannot be trained on image–text pairs: train a dual encoder (model.kind=clip" in error


@needs_media_kinds
def test_select_may_fine_tune_a_dual_encoder_on_image_text_data() -> None:
    """select.finetune_top_k's early check: image-text pairs need no text loss to fit them."""
    from embsel_mlflow.config import DataConfig, TableConfig
    from embsel_mlflow.training.checks import check_finetune

    data = DataConfig(
        name="captions",
        task="image_to_text_retrieval",
        splits={"train": TableConfig(), "test": TableConfig()},
    )
    check_finetune(1, {"captions": data}, TrainConfig())  # no error: mnrl (the default) is not asked to fit


def test_bf16_mixed_precision_trains_with_fp32_weights(
    tiny_dirs: dict[str, Path], shapes: ImageTextPairs
) -> None:
    """train.precision=bf16 runs the forward under autocast (here on CPU); the weights stay fp32."""
    import torch

    model, processor = _load(tiny_dirs["clip"])
    fp32 = train_contrastive(model, processor, shapes, _short(precision="fp32"), show_progress=False)
    model, processor = _load(tiny_dirs["clip"])
    bf16 = train_contrastive(model, processor, shapes, _short(precision="bf16"), show_progress=False)
    assert all(np.isfinite(bf16.losses)) and bf16.losses != fp32.losses  # another arithmetic
    assert bf16.losses[0] == pytest.approx(fp32.losses[0], abs=0.05)  # the same loss, rounded
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        train_contrastive(model, processor, shapes, _short(precision="fp16"))


def test_resuming_an_image_text_run_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Contrastive training keeps no checkpoint: a killed image-text run cannot be continued."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("clip_resume")
    tags = {"embsel.entry_point": "train", "embsel.train.pairs": "media_text"}
    killed = client.create_run(experiment, tags=tags).info.run_id
    client.set_terminated(killed, "KILLED")
    args = ["data=demo_retrieval", f"train.resume={killed}", "tracking.experiment=clip_resume"]
    assert _train_main([*args, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "names an image–text (contrastive) train run, which keeps no checkpoint" in error
    runs = {run.info.run_id: run for run in client.search_runs([experiment])}
    assert runs.pop(killed).info.status == "KILLED"  # untouched
    (failed,) = runs.values()
    assert failed.info.status == "FAILED"


@needs_media_kinds
@pytest.mark.slow  # a training process (~20 s); keeps the default suite within its budget
def test_sigterm_mid_clip_training_ends_the_run_killed(clip_trained, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    _, _, _, _, model_dir, conf = clip_trained
    args = [*_clip_args(model_dir, conf, tmp_path), "train.max_steps=200", "train.eval_steps=0"]
    args += ["train.log_model=false", "train.system_metrics=false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "embsel_mlflow", "train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the console's step lines: SIGTERM once training is under way
        seen.append(line)
        if "step 5/200" in line:
            process.send_signal(signal.SIGTERM)
            break
    output = "".join(seen) + process.stdout.read()
    assert process.wait(timeout=120) == 143, output[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (killed,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert killed.info.status == "KILLED", output[-3000:]
    steps = [m.step for m in client.get_metric_history(killed.info.run_id, "train/loss")]
    assert steps == list(range(1, len(steps) + 1)) and 5 <= len(steps) < 200  # the curve so far is kept
    assert "test/main_score" not in killed.data.metrics
