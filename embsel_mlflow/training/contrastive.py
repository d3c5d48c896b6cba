"""Contrastive fine-tuning of an image–text dual encoder (CLIP, SigLIP) on (image, text) pairs.

The loss is the model's own (``model(..., return_loss=True)``): CLIP's symmetric InfoNCE over
the in-batch similarity matrix scaled by its learnable logit scale, SigLIP's pairwise sigmoid
loss with its learnable scale and bias. Every other pair of a batch is a negative, so a batch
never holds the same text or the same image twice (``train.batch_sampler=no_duplicates``).

A plain torch loop rather than transformers' Trainer: the model's forward already is the loss,
and batches of decoded images need their own sampler and collator. It keeps the Trainer's
choices: AdamW, linear warmup then linear decay (``transformers.get_scheduler``), gradient
clipping at 1.0, ``train.*`` keys with their text-training meaning. Images are decoded one batch
at a time (``media.decode.load_images``). No MLflow or Hydra here: metrics go to a sink.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.media.items import IMAGE, Media

if TYPE_CHECKING:
    from embsel_mlflow.config import TrainConfig
    from embsel_mlflow.training.callbacks import MetricSink

log = logging.getLogger("embsel.train")

MAX_GRAD_NORM = 1.0  # as transformers' Trainer default
# CLIP clips its learned temperature so logits are scaled by at most 100 (CLIP paper, section 2.5).
MAX_LOGIT_SCALE = math.log(100.0)
SIGLIP_TYPES = ("siglip", "siglip2")  # config.model_type of models trained with the sigmoid loss
# (validation main score, every validation score) of the model as it is now.
Validator = Callable[[], tuple[float, dict[str, float]]]


@dataclass
class ImageTextPairs:
    """Training pairs: ``images[i]`` is described by ``texts[i]``."""

    images: list[Media]
    texts: list[str]
    source: str  # e.g. "shapes/train (image_to_text_retrieval)", for messages

    def __post_init__(self) -> None:
        if len(self.images) != len(self.texts):
            raise ValueError(f"{len(self.images)} images but {len(self.texts)} texts")

    def __len__(self) -> int:
        return len(self.texts)

    def keys(self, index: int) -> tuple[str, bytes]:
        """What must not repeat inside a batch: the text, and the image's content."""
        return self.texts[index], self.images[index].digest


@dataclass
class ContrastiveOutcome:
    global_step: int
    losses: list[float] = field(default_factory=list)  # one per optimiser step
    stopped_by: int | None = None  # the signal that stopped training, or None
    validation_step: int | None = None  # the step of the last validation during training
    validation_score: float | None = None  # its main score


def pairs_from_columns(columns: dict[str, list[Any]], source: str) -> ImageTextPairs:
    """The one image column and the one text column of a family's training pairs, in either order."""
    image_columns = [name for name, values in columns.items() if _all_images(values)]
    text_columns = [
        name for name, values in columns.items() if values and all(isinstance(v, str) for v in values)
    ]
    if any(isinstance(v, Media) and v.modality != IMAGE for values in columns.values() for v in values[:1]):
        raise ConfigError(
            f"{source}: contrastive training takes image–text pairs; audio–text training (CLAP) is not "
            "implemented: evaluate and select audio models without fine-tuning"
        )
    if len(image_columns) != 1 or len(text_columns) != 1 or len(columns) != 2:
        raise ConfigError(
            f"{source}: contrastive image–text training needs (image, text) pairs, but the pairs have "
            f"columns {', '.join(columns) or 'none'}; train a dual encoder on image_to_text_retrieval or "
            "text_to_image_retrieval data"
        )
    return ImageTextPairs(list(columns[image_columns[0]]), list(columns[text_columns[0]]), source)


def _all_images(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, Media) and v.modality == IMAGE for v in values)


def check_pair_batches(pairs: ImageTextPairs, batch_size: int, sampler: str) -> None:
    """At least one full batch; with ``no_duplicates``, one without a repeated text or image."""
    from embsel_mlflow.training.checks import check_sampler_name

    check_sampler_name(sampler)
    if batch_size < 2:
        raise ConfigError(
            f"train.batch_size must be >= 2 for contrastive training (in-batch negatives), got {batch_size}"
        )
    if len(pairs) < batch_size:
        raise DataError(
            f"{pairs.source}: {len(pairs)} training pair(s), fewer than one batch "
            f"(train.batch_size={batch_size}); lower train.batch_size or add training data"
        )
    if sampler == "no_duplicates":
        first = next(iter(epoch_batches(pairs, batch_size, sampler, np.random.default_rng(0))), [])
        if len(first) < batch_size:
            distinct = len({pairs.texts[i] for i in range(len(pairs))})
            raise DataError(
                f"{pairs.source}: the no_duplicates sampler cannot fill a batch of {batch_size} pairs "
                f"without repeating a text or an image ({distinct} distinct texts); lower "
                f"train.batch_size to at most {len(first)}, or set train.batch_sampler=batch_sampler "
                "(a repeated caption is then a false negative)"
            )


def epoch_batches(
    pairs: ImageTextPairs, batch_size: int, sampler: str, rng: np.random.Generator
) -> list[list[int]]:
    """One epoch's batches of pair indices, in a random order drawn from ``rng``.

    ``no_duplicates`` fills each batch greedily, as sentence-transformers' NoDuplicatesBatchSampler:
    a pair whose text or image is already in the batch waits for a later one. A last batch of
    fewer than 2 pairs is dropped (with no negative it teaches nothing).
    """
    order = [int(i) for i in rng.permutation(len(pairs))]
    if sampler != "no_duplicates":
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        return [batch for batch in batches if len(batch) >= 2]
    batches = []
    remaining = order
    while remaining:
        batch: list[int] = []
        seen: set[Any] = set()
        rest: list[int] = []
        for position, index in enumerate(remaining):
            if len(batch) == batch_size:
                rest.extend(remaining[position:])
                break
            keys = pairs.keys(index)
            if any(key in seen for key in keys):
                rest.append(index)
                continue
            batch.append(index)
            seen.update(keys)
        if len(batch) >= 2:
            batches.append(batch)
        elif len(batch) == len(remaining):  # one pair left, or every pair left is a duplicate of one
            break
        remaining = rest
    return batches


def is_sigmoid_model(model: Any) -> bool:
    """SigLIP (sigmoid loss, texts padded to the full length as it was trained) rather than CLIP."""
    return str(getattr(model.config, "model_type", "")) in SIGLIP_TYPES


def text_settings(model: Any, processor: Any, max_length: int | None = None) -> dict[str, Any]:
    """Tokenizer arguments, as the clip kind encodes texts (``models/clip_forward.py``).

    SigLIP pools the last position, so it pads to the full length as it was trained; CLIP pools
    at the end-of-text token and pads to the longest text. Truncation at the smallest of
    ``max_length`` (``model.max_seq_length``), the text tower's positions and the tokenizer's limit.
    """
    positions = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
    limits = [
        int(limit)
        for limit in (max_length, positions, getattr(processor.tokenizer, "model_max_length", None))
        if isinstance(limit, int) and 0 < limit < 1_000_000
    ]
    padding: bool | str = "max_length" if is_sigmoid_model(model) else True
    return {"padding": padding, "truncation": True, "max_length": min(limits) if limits else 77}


def batch_inputs(
    processor: Any,
    model: Any,
    images: Sequence[Media],
    texts: Sequence[str],
    *,
    max_length: int | None = None,
) -> dict[str, Any]:
    """The model inputs of one batch: its images decoded now, its texts tokenized."""
    from embsel_mlflow.media.decode import load_images

    tokens = processor.tokenizer(
        list(texts), return_tensors="pt", **text_settings(model, processor, max_length)
    )
    pixels = processor.image_processor(images=load_images(images), return_tensors="pt")
    return {**tokens, **pixels}


def contrastive_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """The model's own loss on one batch (CLIP: symmetric InfoNCE; SigLIP: sigmoid)."""
    return model(**inputs, return_loss=True).loss


def check_trainable(model: Any) -> None:
    """A dual encoder whose forward computes its contrastive loss (CLIPModel, SiglipModel)."""
    import inspect

    forward = getattr(model, "forward", None)
    if forward is None or "return_loss" not in inspect.signature(forward).parameters:
        raise ConfigError(
            f"{type(model).__name__} has no contrastive loss (forward(return_loss=True)); contrastive "
            "training takes CLIPModel or SiglipModel checkpoints"
        )


def train_contrastive(
    model: Any,
    processor: Any,
    pairs: ImageTextPairs,
    cfg: TrainConfig,
    *,
    sink: MetricSink | None = None,
    validate: Validator | None = None,
    show_progress: bool | None = None,
    max_length: int | None = None,
) -> ContrastiveOutcome:
    """Fine-tune ``model`` (in place, on its own device) on ``pairs``; the per-step losses.

    Uses ``train.``: epochs / max_steps, batch_size, batch_sampler, learning_rate, warmup_ratio,
    weight_decay, gradient_accumulation_steps, seed, precision, logging_steps and eval_steps
    (``validate`` is then called: None = at each epoch's end, 0 = never, N = every N steps).
    A SIGINT / SIGTERM / SIGHUP finishes the step and returns with ``stopped_by`` set.
    ``show_progress`` None: a progress bar only when stderr is a terminal. ``max_length``: the
    text length the model is evaluated with (``model.max_seq_length``), so it trains on the same.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_scheduler, set_seed

    from embsel_mlflow.training.callbacks import StopOnSignal
    from embsel_mlflow.training.trainer import mixed_precision

    check_trainable(model)
    check_pair_batches(pairs, cfg.batch_size, cfg.batch_sampler)
    accumulation = max(1, cfg.gradient_accumulation_steps)
    device = next(model.parameters()).device
    bf16, fp16 = mixed_precision(cfg.precision, str(device))
    set_seed(cfg.seed)  # python, numpy and torch (dropout) generators, as the Trainer seeds them

    first_epoch = epoch_batches(pairs, cfg.batch_size, cfg.batch_sampler, _epoch_rng(cfg.seed, 0))
    steps_per_epoch = max(1, len(first_epoch) // accumulation)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(_parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    warmup = math.ceil(total * cfg.warmup_ratio) if cfg.warmup_ratio < 1 else int(cfg.warmup_ratio)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=warmup, num_training_steps=total)
    scaler = torch.amp.GradScaler("cuda") if fp16 else None
    dtype = torch.bfloat16 if bf16 else torch.float16
    metrics = _Metrics(
        sink, total, samples_per_step=cfg.batch_size * accumulation, logging_steps=cfg.logging_steps
    )
    outcome = ContrastiveOutcome(global_step=0)
    log.info("contrastive training: %d pairs, %d steps (%d per epoch)", len(pairs), total, steps_per_epoch)

    stop = StopOnSignal()
    progress = tqdm(total=total, desc="training", unit="step", disable=not _show(show_progress))
    model.train()
    started = time.perf_counter()
    try:
        with stop.catching():
            micro = _micro_batches(pairs, cfg, first_epoch)
            while outcome.global_step < total and stop.signum is None:
                optimizer.zero_grad(set_to_none=True)
                step_loss, epoch = 0.0, 0.0
                for _ in range(accumulation):
                    batch, epoch, epoch_end = next(micro)
                    images, texts = [pairs.images[i] for i in batch], [pairs.texts[i] for i in batch]
                    inputs = batch_inputs(processor, model, images, texts, max_length=max_length)
                    inputs = {key: value.to(device) for key, value in inputs.items()}
                    with torch.autocast(device.type, dtype=dtype, enabled=bf16 or fp16):
                        loss = contrastive_loss(model, inputs) / accumulation
                    (scaler.scale(loss) if scaler else loss).backward()
                    step_loss += float(loss.detach())
                if scaler:
                    scaler.unscale_(optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM))
                learning_rate = scheduler.get_last_lr()[0]
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                _clamp_logit_scale(model)
                outcome.global_step += 1
                outcome.losses.append(step_loss)
                progress.update(1)
                step = outcome.global_step
                extra = {"train/epoch": epoch, "train/logit_scale": _logit_scale(model)}
                metrics.step(step, step_loss, learning_rate, grad_norm, extra, force=stop.signum is not None)
                if validate is not None and _validation_due(cfg.eval_steps, step, epoch_end, total):
                    model.eval()
                    score, scores = validate()
                    model.train()
                    outcome.validation_step, outcome.validation_score = step, score
                    metrics.validation(step, score, scores)
    finally:
        progress.close()
        model.eval()
        metrics.finish(outcome, time.perf_counter() - started)
    outcome.stopped_by = stop.signum
    return outcome


def _show(show_progress: bool | None) -> bool:
    return sys.stderr.isatty() if show_progress is None else show_progress


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def _micro_batches(
    pairs: ImageTextPairs, cfg: TrainConfig, first_epoch: list[list[int]]
) -> Iterator[tuple[list[int], float, bool]]:
    """(batch, fractional epoch after it, whether it ends an epoch), epoch after epoch, without end."""
    epoch, batches = 0, first_epoch
    while True:
        for position, batch in enumerate(batches, start=1):
            yield batch, epoch + position / len(batches), position == len(batches)
        epoch += 1
        batches = epoch_batches(pairs, cfg.batch_size, cfg.batch_sampler, _epoch_rng(cfg.seed, epoch))


def _validation_due(eval_steps: int | None, step: int, epoch_end: bool, total: int) -> bool:
    if eval_steps is None:
        return epoch_end
    return eval_steps > 0 and (step % eval_steps == 0)


def _parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: biases, norms and the logit scale / bias keep theirs (as CLIP)."""
    decay: list[Any] = []
    keep: list[Any] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else keep).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _clamp_logit_scale(model: Any) -> None:
    """CLIP's rule; SigLIP has none (its released checkpoints' scales exceed 100)."""
    import torch

    scale = getattr(model, "logit_scale", None)
    if scale is not None and not is_sigmoid_model(model):
        with torch.no_grad():
            scale.clamp_(0.0, MAX_LOGIT_SCALE)


def _logit_scale(model: Any) -> float:
    scale = getattr(model, "logit_scale", None)
    return float(scale.detach().exp()) if scale is not None else float("nan")


class _Metrics:
    """Training metrics as text training logs them (``train/loss`` per logging window, ...), batched."""

    def __init__(
        self,
        sink: MetricSink | None,
        total: int,
        *,
        samples_per_step: int,
        logging_steps: int,
        flush_size: int = 500,
    ) -> None:
        self.sink = sink
        self.total = total
        self.samples_per_step = samples_per_step
        self.flush_size = flush_size
        self.buffer: list[tuple[str, float, int]] = []
        self.window: list[float] = []
        self.last_step, self.last_time = 0, time.perf_counter()
        self.logging_steps = max(1, logging_steps)

    def step(
        self,
        step: int,
        loss: float,
        learning_rate: float,
        grad_norm: float,
        extra: dict[str, float],
        *,
        force: bool = False,
    ) -> None:
        self.window.append(loss)
        if not (force or step % self.logging_steps == 0 or step == self.total):
            return
        mean = float(np.mean(self.window))
        self.window = []
        log.info("step %d/%d: loss %.4f", step, self.total, mean)
        now = time.perf_counter()
        entries = {"train/loss": mean, "train/learning_rate": learning_rate, "train/grad_norm": grad_norm}
        entries.update(extra)
        if now > self.last_time:
            entries["train/samples_per_second"] = (
                (step - self.last_step) * self.samples_per_step / (now - self.last_time)
            )
        self.last_step, self.last_time = step, now
        self._add(entries, step)

    def validation(self, step: int, score: float, scores: dict[str, float]) -> None:
        log.info("step %d/%d: validation main score %.5f", step, self.total, score)
        self._add({**{f"validation/{k}": v for k, v in scores.items()}, "validation/main_score": score}, step)
        self.flush()

    def finish(self, outcome: ContrastiveOutcome, seconds: float) -> None:
        if outcome.global_step and seconds > 0:
            self._add(
                {
                    "train/runtime_seconds": seconds,
                    "train/overall_samples_per_second": outcome.global_step * self.samples_per_step / seconds,
                    "train/overall_steps_per_second": outcome.global_step / seconds,
                    "train/average_loss": float(np.mean(outcome.losses)),
                },
                outcome.global_step,
            )
        self.flush()

    def _add(self, entries: dict[str, float], step: int) -> None:
        self.buffer += [(key, float(value), step) for key, value in entries.items() if math.isfinite(value)]
        if len(self.buffer) >= self.flush_size:
            self.flush()

    def flush(self) -> None:
        if self.sink is not None and self.buffer:
            entries, self.buffer = self.buffer, []
            self.sink.log_metric_steps(entries)
        elif self.sink is None:
            self.buffer = []
