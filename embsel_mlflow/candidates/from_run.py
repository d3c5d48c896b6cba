"""``model.kind=from_run``: the model an `embsel train` run logged (``model.run_id``).

The logged model is read back as every logged model is (``tracking.embedding_model``) and loaded
as the sentence-transformers directory it is, or, for an image or audio model, by the kind that
logged it (its saved weights: a CLIP directory, an image feature fit); prompts and
normalisation not set in the config come from the logged settings. The modality guard asks the
logged model's kind what it embeds, so a logged CLIP or image feature fit runs on image data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, get_kind, register_kind
from embsel_mlflow.config import ModelKind
from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.base import EmbeddingModel


_NO_RUN_ID = "model=from_run needs model.run_id=<id of a train run that logged a model>"


class FromRunKind(CandidateKind):
    name = ModelKind.from_run.value
    # ``modalities`` (text) is only what the kind lists itself under; the modality guard asks
    # ``modalities_of``: the logged model's own kind's.
    registrable = True
    trainable = True

    def build(self, cfg: ModelConfig, context: BuildContext) -> EmbeddingModel:
        logged = logged_model_config(cfg, context)
        return get_kind(logged.kind, model=cfg.name).build(logged, context)

    def modalities_of(self, cfg: ModelConfig, context: BuildContext) -> frozenset[str]:
        """What the logged model's own kind embeds (a CLIP or image feature fit takes images)."""
        from embsel_mlflow.tracking.embedding_model import logged_model_kind

        if context.models_dir is not None:  # downloaded once, where build() finds it again
            kind = logged_model_config(cfg, context).kind
        else:  # nowhere to keep it: its settings alone, no weights
            if not cfg.run_id:
                raise ConfigError(_NO_RUN_ID)
            kind = logged_model_kind(cfg.run_id, tracking_uri=context.tracking_uri)
        return get_kind(kind, model=cfg.name).modalities


def logged_model_config(cfg: ModelConfig, context: BuildContext) -> ModelConfig:
    """A from_run candidate as the model directory its run logged (downloaded once), of its own kind."""
    import tempfile
    from pathlib import Path

    from embsel_mlflow.tracking.embedding_model import fetch_logged_model

    if not cfg.run_id:
        raise ConfigError(_NO_RUN_ID)
    models_dir = context.models_dir
    root = models_dir / "from_run" if models_dir is not None else Path(tempfile.mkdtemp(prefix="embsel-run-"))
    logged = fetch_logged_model(cfg.run_id, root, tracking_uri=context.tracking_uri)
    if logged.backend not in ("sentence_transformers", "media"):
        raise ConfigError(
            f"run {cfg.run_id} logged a {logged.backend} model; "
            "from_run loads transformers, image and audio models"
        )
    return logged.config(cfg)


KIND = register_kind(FromRunKind())
