"""``model.kind=openai_api``: an OpenAI-compatible /v1/embeddings endpoint (``model.api``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.candidates.base import BuildContext, CandidateKind, register_kind
from embsel_mlflow.config import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.openai_api import ApiEncoder


class OpenAiApiKind(CandidateKind):
    name = ModelKind.openai_api.value  # a remote service: nothing to register, train or vary

    def build(self, cfg: ModelConfig, context: BuildContext) -> ApiEncoder:
        from embsel_mlflow.models.openai_api import ApiEncoder

        return ApiEncoder(cfg)


KIND = register_kind(OpenAiApiKind())
