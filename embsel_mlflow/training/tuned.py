"""A fine-tuned model as a candidate: the base model's encoder with an identity of its own."""

from __future__ import annotations

from typing import Any

from embsel_mlflow.models.encoder import Encoder
from embsel_mlflow.models.resolve import ResolvedModel


class TunedEncoder(Encoder):
    """Encodes like the base candidate; its identity names the training run, so the embedding
    cache and the logged-model link never mix it up with the base model."""

    def __init__(self, base: Encoder, run_id: str, step: int, source: ResolvedModel | None = None) -> None:
        # ``source``: where the tuned weights are and their sha256 (default: the base's)
        super().__init__(base.model, base.config, source or base.source)
        self.run_id = run_id
        self.step = step

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, "fine_tuned_in_run": self.run_id, "fine_tuned_steps": self.step}
