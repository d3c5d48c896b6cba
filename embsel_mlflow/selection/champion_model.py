"""The registered champion as an MLflow pyfunc model (MLflow "models from code").

MLflow copies this file into the logged model, so it imports only what serving needs:
sentence-transformers loads the saved model with trust_remote_code off and safetensors only.
``predict(texts)`` returns float32 embeddings, one row per text; ``params={"role": "query"}``
(or "document") applies the model's role prompt, as in evaluation.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np


class EmbeddingModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from sentence_transformers import SentenceTransformer

        with open(context.artifacts["settings"]) as handle:
            self.settings = json.load(handle)
        self.model = SentenceTransformer(
            context.artifacts["model"],
            device="cpu",
            trust_remote_code=False,
            local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )

    # No type hints here: MLflow would try to derive a signature from them (the logged one is explicit).
    def predict(self, context, model_input, params=None):
        texts = _texts(model_input)
        role = (params or {}).get("role") or "symmetric"
        embeddings = self.model.encode(
            texts,
            prompt=self.settings["prompts"].get(role),
            normalize_embeddings=self.settings["normalize"],
            batch_size=self.settings["batch_size"],
            convert_to_numpy=True,
        )
        return np.asarray(embeddings, dtype=np.float32)


def _texts(model_input: Any) -> list[str]:
    """A list of strings from a list, a Series, or a one-column DataFrame."""
    if hasattr(model_input, "columns"):  # pandas DataFrame: its first column holds the texts
        model_input = model_input[model_input.columns[0]]
    if hasattr(model_input, "tolist"):
        model_input = model_input.tolist()
    if isinstance(model_input, str):
        return [model_input]
    return [str(text) for text in model_input]


mlflow.models.set_model(EmbeddingModel())
