"""A fine-tuned image–text dual encoder as a candidate: the base model with an identity of its own."""

from __future__ import annotations

from typing import Any

from embsel_mlflow.models.clip import ClipModel
from embsel_mlflow.models.resolve import ResolvedModel


class TunedClipModel(ClipModel):
    """Encodes and serves like the base (the same forward, now holding the tuned weights); its identity
    names the training run, so the embedding cache and the logged-model link never mix it up with the
    base model."""

    def __init__(self, base: ClipModel, run_id: str, step: int, source: ResolvedModel | None = None) -> None:
        # ``source``: where the tuned weights are and their sha256 (default: the base's)
        super().__init__(base.forward, base.config, source or base.source)
        self.run_id = run_id
        self.step = step

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, "fine_tuned_in_run": self.run_id, "fine_tuned_steps": self.step}
