"""Checks that must fail before any training step: too little data, a sampler that cannot fill a batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.training.pairs import TrainPairs

if TYPE_CHECKING:
    from embsel_mlflow.config import DataConfig, TrainConfig

SAMPLERS = ("no_duplicates", "batch_sampler")


def check_sampler_name(name: str) -> None:
    if name not in SAMPLERS:
        raise ConfigError(
            f"unknown batch sampler '{name}': train.batch_sampler takes one of {', '.join(SAMPLERS)}"
        )


def check_batches(pairs: TrainPairs, batch_size: int, sampler: str) -> None:
    """At least one full batch of ``pairs``; with ``no_duplicates``, one without repeated texts."""
    check_sampler_name(sampler)
    if batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {batch_size}")
    if len(pairs) < batch_size:
        raise DataError(
            f"{pairs.source}: {len(pairs)} training pair(s), fewer than one batch "
            f"(train.batch_size={batch_size}); "
            "lower train.batch_size or add training data"
        )
    if sampler == "no_duplicates" and not _fills_a_batch(pairs, batch_size):
        raise DataError(
            f"{pairs.source}: the no_duplicates sampler cannot fill a batch of {batch_size} pairs without "
            "repeating a text (too few distinct texts); lower train.batch_size, or set "
            "train.batch_sampler=batch_sampler for losses without in-batch negatives"
        )


def _fills_a_batch(pairs: TrainPairs, batch_size: int) -> bool:
    """Whether a greedy pass, as NoDuplicatesBatchSampler makes, finds ``batch_size`` rows sharing no text."""
    seen: set[str] = set()
    taken = 0
    columns = [pairs.columns[name] for name in pairs.text_columns]
    for row in zip(*columns, strict=True):
        values = {str(value) for value in row}
        if values & seen:
            continue
        seen |= values
        taken += 1
        if taken >= batch_size:
            return True
    return False


def check_finetune(top_k: int, datasets: Mapping[str, DataConfig], train: TrainConfig) -> None:
    """``select.finetune_top_k``: refuse, before anything is evaluated or trained, what would make every
    fine-tune fail."""
    from embsel_mlflow.training.losses import check_loss_fits
    from embsel_mlflow.training.pairs import MEDIA_TEXT, TASK_PAIRS

    if top_k < 0:
        raise ConfigError(f"select.finetune_top_k must be >= 0 (0 = no fine-tuning), got {top_k}")
    if top_k == 0:
        return
    if train.resume:
        raise ConfigError(
            "train.resume continues one `embsel train` run; select.finetune_top_k starts new ones: "
            "drop train.resume"
        )
    if not train.log_model:
        raise ConfigError(
            "select.finetune_top_k ranks each tuned model as logged in its run: set train.log_model=true"
        )
    check_sampler_name(train.batch_sampler)
    for name, data in datasets.items():
        task = str(data.task)
        if data.train_split not in data.splits:
            raise ConfigError(
                f"select.finetune_top_k: dataset '{name}' has no '{data.train_split}' split to fine-tune "
                f"on (splits: {', '.join(sorted(data.splits))}); add data.splits.{data.train_split} to "
                f"its config, point datasets.{name}.train_split at another split, or drop the dataset"
            )
        kind = TASK_PAIRS.get(task)
        if kind is None:
            raise ConfigError(
                f"select.finetune_top_k: dataset '{name}' ({task}) has no training pairs; "
                "fine-tune on retrieval, STS, pair classification or classification datasets"
            )
        if kind == MEDIA_TEXT:  # a dual encoder trains with its own contrastive loss
            continue
        # the loss must fit every dataset's pairs (checked on their kind: no data is loaded yet)
        check_loss_fits(train.loss, TrainPairs(kind, {}, f"{name}/{data.train_split} ({task})"))
