"""The loss factory: a name from conf/train/loss, the pairs it fits, the sentence-transformers loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.training.pairs import KIND_COLUMNS, PairKind, TrainPairs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config import LossConfig


@dataclass(frozen=True)
class LossSpec:
    fits: tuple[PairKind, ...]  # the pair kinds this loss can learn from
    build: Callable[[SentenceTransformer, LossConfig], Any]
    in_batch_negatives: bool = False  # wants the no-duplicates sampler


def _mnrl(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=cfg.scale)


def _cached_mnrl(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size)


def _cosent(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    return CoSENTLoss(model, scale=cfg.scale)


def _angle(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import AnglELoss

    return AnglELoss(model, scale=cfg.scale)


def _contrastive(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import ContrastiveLoss

    return ContrastiveLoss(model, margin=cfg.margin)


def _online_contrastive(model: SentenceTransformer, cfg: LossConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import OnlineContrastiveLoss

    return OnlineContrastiveLoss(model, margin=cfg.margin)


LOSSES: dict[str, LossSpec] = {
    "mnrl": LossSpec((PairKind.positive,), _mnrl, in_batch_negatives=True),
    "cached_mnrl": LossSpec((PairKind.positive,), _cached_mnrl, in_batch_negatives=True),
    # 0/1 labels are scores too: CoSENT/AnglE rank labelled pairs as well
    "cosent": LossSpec((PairKind.scored, PairKind.labelled), _cosent),
    "angle": LossSpec((PairKind.scored, PairKind.labelled), _angle),
    "contrastive": LossSpec((PairKind.labelled,), _contrastive),
    "online_contrastive": LossSpec((PairKind.labelled,), _online_contrastive),
}


def loss_spec(name: str) -> LossSpec:
    """The loss ``name``, or a ConfigError listing the losses there are."""
    if name not in LOSSES:
        raise ConfigError(
            f"unknown loss '{name}': train.loss.name takes one of {', '.join(LOSSES)} "
            "(e.g. train/loss=cosent)"
        )
    return LOSSES[name]


def check_loss_fits(cfg: LossConfig, pairs: TrainPairs) -> LossSpec:
    """Refuse a loss that cannot learn from these pairs, naming the losses that can."""
    spec = loss_spec(cfg.name)
    if pairs.kind not in spec.fits:
        fitting = [name for name, other in LOSSES.items() if pairs.kind in other.fits]
        needs = " or ".join(KIND_COLUMNS[kind] for kind in spec.fits)
        raise ConfigError(
            f"loss '{cfg.name}' needs {needs}, but {pairs.source} gives {KIND_COLUMNS[pairs.kind]}; "
            f"use train/loss={' or train/loss='.join(fitting)}"
        )
    for dim in cfg.matryoshka_dims:
        if dim < 1:
            raise ConfigError(
                f"train.loss.matryoshka_dims must be positive sizes, got {list(cfg.matryoshka_dims)}"
            )
    return spec


def build_loss(model: SentenceTransformer, cfg: LossConfig, pairs: TrainPairs) -> Any:
    """The loss for ``pairs``, wrapped in MatryoshkaLoss when ``cfg.matryoshka_dims`` is set."""
    spec = check_loss_fits(cfg, pairs)
    loss = spec.build(model, cfg)
    if not cfg.matryoshka_dims:
        return loss
    dim = model.get_embedding_dimension()
    too_large = [d for d in cfg.matryoshka_dims if dim is not None and d > dim]
    if too_large:
        raise ConfigError(
            f"train.loss.matryoshka_dims {too_large} exceed the model's embedding size {dim}; "
            f"use sizes <= {dim}"
        )
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    return MatryoshkaLoss(model, loss, matryoshka_dims=sorted(cfg.matryoshka_dims, reverse=True))
