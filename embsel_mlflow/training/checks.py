"""Checks that must fail before any training step: too little data, a sampler that cannot fill a batch."""

from __future__ import annotations

from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.training.pairs import TrainPairs

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
