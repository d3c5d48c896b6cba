"""``conf/train/``: fine-tuning settings (``training/``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from embsel_mlflow.errors import ConfigError


@dataclass
class LossConfig:
    """The training loss (``embsel_mlflow.training.losses``); each name says which pairs it fits."""

    # mnrl | cached_mnrl: (anchor, positive[, negatives]) with in-batch negatives;
    # cosent | angle: scored pairs; contrastive | online_contrastive: pairs labelled 0/1.
    name: str = "mnrl"
    scale: float = 20.0  # mnrl, cached_mnrl, cosent, angle: similarity scale (inverse temperature)
    mini_batch_size: int = 32  # cached_mnrl: texts per forward pass (GradCache); any batch size fits
    margin: float = 0.5  # contrastive, online_contrastive: distance margin of negative pairs
    # Matryoshka: also train truncated embeddings of these sizes (e.g. [384, 256, 128, 64]); [] = off.
    matryoshka_dims: list[int] = field(default_factory=list)


@dataclass
class HardNegativesConfig:
    """Hard negatives for (query, positive) pairs, mined with the base model (``mine_hard_negatives``)."""

    enabled: bool = False
    num_negatives: int = 1
    range_min: int = 10  # skip the top-ranked candidates (likely unlabelled positives)
    range_max: int = 50
    relative_margin: float | None = 0.05  # a negative scores at most (1 - margin) x the positive
    sampling_strategy: str = "top"  # top | random
    # Unused since mining encodes through the candidate and its embedding cache (at model.batch_size,
    # as evaluate does); kept so existing configs still compose.
    batch_size: int = 64


@dataclass
class TrainConfig:
    """What ``embsel train`` (and ``select.finetune_top_k``) does (``embsel_mlflow.training``): pairs,
    loss, optimisation, intervals."""

    loss: LossConfig = field(default_factory=LossConfig)
    hard_negatives: HardNegativesConfig = field(default_factory=HardNegativesConfig)
    # Training pairs from the data config's train split (data.train_split).
    max_pairs: int | None = None  # keep the first N pairs (quick runs); None = all
    pairs_per_class: int = 50  # classification: (anchor, positive) pairs drawn within each class
    # Validation: a split of the data config, else this share of the train split's items (queries
    # for retrieval) held out from training. Scored by the task's own evaluator.
    validation_split: str | None = None
    validation_fraction: float = 0.1
    batch_sampler: str = "no_duplicates"  # no_duplicates | batch_sampler (plain shuffled batches)
    batch_size: int = 32
    learning_rate: float = 2e-5
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    seed: int = 42
    precision: str = "auto"  # auto (bf16 where the hardware has it, else fp32) | fp32 | fp16 | bf16
    logging_steps: int = 10
    eval_steps: int | None = None  # None: evaluate once per epoch; 0: never during training
    save_steps: int | None = None  # None: checkpoint once per epoch (and on SIGINT/SIGTERM)
    save_total_limit: int = 2  # checkpoints kept (the last N)
    early_stopping_patience: int | None = None  # evaluations without improvement of the main score
    output_dir: str | None = None  # checkpoints; None: <hydra run dir>/checkpoints
    resume: str | None = None  # a train run id: continue it from its last checkpoint, into the same run
    register: str | None = None  # register the trained model under this name
    log_model: bool = True  # log the trained model into the run (an MLflow pyfunc model)
    system_metrics: bool = True  # MLflow system metrics (CPU, memory, GPU) while training
    system_metrics_interval_s: float = 10.0


def check_optimisation(train: TrainConfig) -> None:
    """Refuse (one line) a learning rate or a length that would fine-tune nothing, or worse."""
    rate = train.learning_rate
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(
            f"train.learning_rate must be a positive number, got {rate}; e.g. train.learning_rate=2e-5"
        )
    if train.max_steps == 0 or train.max_steps < -1:
        raise ConfigError(
            f"train.max_steps must be a positive step count, or -1 to train for train.epochs; "
            f"got {train.max_steps}"
        )
    if train.max_steps == -1 and not (math.isfinite(train.epochs) and train.epochs > 0):
        raise ConfigError(
            f"train.epochs must be positive (fractions allowed), got {train.epochs}; e.g. train.epochs=1, "
            "or set train.max_steps"
        )
