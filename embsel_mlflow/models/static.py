"""Static models (model2vec): a token-embedding table distilled from a transformer.

Distilling takes tens of seconds, so a distilled model is kept under the cache's ``models/``
directory, keyed by the teacher's weights and the distillation settings, and reused by
every later run and process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config import StaticConfig
from embsel_mlflow.errors import ModelError, first_line
from embsel_mlflow.models.base import (
    DISTILLED,
    PretrainedCandidate,
    encode_prompted,
    text_inputs,
)
from embsel_mlflow.models.hub_loading import bars_off_terminal, no_loading_bars
from embsel_mlflow.models.resolve import HUB, LOCAL, ResolvedModel, memoised_sha256, resolve_model_source

if TYPE_CHECKING:
    from model2vec import StaticModel as Model2Vec

    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.media import Media

log = logging.getLogger(__name__)
_WEIGHTS = "model.safetensors"
# model2vec and its tokenizer editor (skeletoken) log each padding-token change, token remap,
# PCA step and save at INFO: details of a distillation, not news for the console.
_CHATTY_LOGGERS = ("model2vec", "skeletoken")


class StaticEncoder(PretrainedCandidate):
    """A model2vec model: each text is the (SIF-weighted) mean of its tokens' vectors."""

    device = "cpu"

    def __init__(self, model: Model2Vec, cfg: ModelConfig, source: ResolvedModel) -> None:
        from embsel_mlflow.models.static_pooling import StaticPooling

        self._model = model
        self._cfg = cfg
        self._source = source
        self._pooling = StaticPooling(model) if StaticPooling.supports(model) else None

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        texts = text_inputs(texts, self._cfg.name)
        max_length = self._cfg.max_seq_length or 512

        def embed(prompted: list[str]) -> np.ndarray:  # float16 rows: model2vec stores float16 vectors
            if self._pooling is not None:  # model2vec's encode, bit for bit, several times faster
                return self._pooling.encode(prompted, max_length)
            return self._model.encode(
                prompted,
                show_progress_bar=show_progress,
                max_length=max_length,
                batch_size=max(self._cfg.batch_size, 1024),  # a table lookup: large batches cost nothing
            )

        return encode_prompted(self._cfg, texts, role, embed, lambda: self.embedding_dim)

    @property
    def model(self) -> Model2Vec:
        return self._model

    @property
    def model_dir(self) -> Path:
        """The model2vec directory (loadable by ``StaticModel.from_pretrained`` or ST's StaticEmbedding)."""
        return Path(self._source.path_or_id)

    @property
    def source(self) -> ResolvedModel:
        return self._source

    @property
    def embedding_dim(self) -> int:
        return int(self._model.dim)

    @property
    def num_parameters(self) -> int:
        return int(np.asarray(self._model.embedding).size)

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self._source, self._cfg.static)


def load_static(cfg: ModelConfig, *, models_dir: Path | None = None) -> StaticEncoder:
    """Load a model2vec model: distilled from ``name_or_path`` (once, then reused), or as it is."""
    from model2vec import StaticModel

    settings = cfg.static or StaticConfig()
    if settings.distill:
        directory = distilled_dir(cfg, settings, models_dir)
    else:
        directory = Path(resolve_model_source(cfg).path_or_id)
        if not (directory / _WEIGHTS).is_file():
            raise ModelError(
                f"{directory} is not a local model2vec model (no {_WEIGHTS}); download it, or set "
                "model.static.distill=true to distil one from a transformer"
            )
    with quiet_model2vec():
        model = StaticModel.from_pretrained(str(directory))
    digest = memoised_sha256([directory / _WEIGHTS])[0]
    return StaticEncoder(model, cfg, ResolvedModel(str(directory), DISTILLED, digest))


def distilled_dir(cfg: ModelConfig, settings: StaticConfig, models_dir: Path | None) -> Path:
    """The directory of the model distilled from cfg's teacher with ``settings`` (distilled if absent)."""
    from embsel_mlflow.models.cache import default_cache_dir, directory_fingerprint

    teacher = resolve_model_source(cfg)
    if teacher.origin == HUB:
        raise ModelError(
            f"cannot distil '{cfg.name_or_path}': the teacher must be a local copy (offline package or "
            "directory); download it where you have network and set model.name_or_path=/path/to/it"
        )
    pinned = teacher.sha256 if teacher.origin != LOCAL else directory_fingerprint(Path(teacher.path_or_id))
    recipe = {
        "teacher": pinned,
        "pca_dims": settings.pca_dims,
        "sif_coefficient": settings.sif_coefficient,
        "trust_remote_code": cfg.trust_remote_code,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]
    root = Path(settings.dir).expanduser() if settings.dir else (models_dir or default_cache_dir() / "models")
    target = root / "static" / key
    if (target / _WEIGHTS).is_file():
        return target
    log.info("distilling a static model from %s (once; kept in %s)", teacher.path_or_id, target)
    _distil_into(target, teacher.path_or_id, settings, cfg.trust_remote_code)
    return target


def _distil_into(target: Path, teacher_dir: str, settings: StaticConfig, trust_remote_code: bool) -> None:
    """Distil into a temporary directory and rename it into place (a concurrent twin may win)."""
    try:
        from model2vec.distill import distill
    except ImportError as err:
        raise ModelError(f"distilling a static model needs model2vec's distill extra: {err}") from err

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with quiet_model2vec(), no_loading_bars():
            model = distill(
                teacher_dir,
                pca_dims=settings.pca_dims,
                sif_coefficient=settings.sif_coefficient,
                trust_remote_code=trust_remote_code,
                device="cpu",
            )
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot distil a static model from {teacher_dir}: {first_line(err)}") from err
    try:
        with quiet_model2vec():
            model.save_pretrained(str(tmp))
        os.replace(tmp, target)  # atomic; fails if another process already put its copy there
    except OSError:
        if not (target / _WEIGHTS).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def quiet_model2vec() -> Iterator[None]:
    """model2vec's INFO lines held back, and its token-encoding bar only on a terminal, for the call.

    Only these loggers and only while the call runs: the rest of the console is the app's.
    """
    # The bar is in the distill extra, imported only by a distillation (with sklearn: seconds);
    # loading a distilled model never runs it, so it is not imported for that.
    inference: Any = sys.modules.get("model2vec.distill.inference")
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with bars_off_terminal(inference):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
