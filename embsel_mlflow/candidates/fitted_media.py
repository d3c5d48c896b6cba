"""What the media kinds fitted per dataset share (``image_features``, ``audio_features``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.candidates.base import BuildContext, CandidateKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.fitted_media import FittedMediaModel


class FittedMediaKind(CandidateKind):
    """A kind whose model (a ``models.fitted_media.FittedMediaModel``) is fitted per dataset.

    Its fitted copy (``for_dataset``) is logged and served through its forward module, so a
    selection's champion can be registered even when it is the baseline.
    """

    registrable = True
    fitted_per_dataset = True

    def model_class(self) -> type[FittedMediaModel[Any, Any]]:
        """The model class (imported when a candidate is built)."""
        raise NotImplementedError

    def build(self, cfg: ModelConfig, context: BuildContext) -> FittedMediaModel[Any, Any]:
        model_class = self.model_class()
        saved = model_class.saved_fit_dir(cfg.name_or_path)
        if saved is not None:  # a logged model's weights/: its fit, on every dataset
            return model_class.from_saved(cfg, saved)
        return model_class(cfg, models_dir=context.models_dir)
