"""An embedding model (select's champion, train's result) as an MLflow pyfunc model.

MLflow "models from code": see tracking/embedding_model.py, which logs it.

MLflow copies this file into the logged model, so it imports only what serving needs: a
sentence-transformers directory (trust_remote_code off, safetensors only) or a model2vec
static model. ``predict(texts)`` returns float32 embeddings, one row per text, exactly as the
candidate encoded them in evaluation; ``params={"role": "query"}`` (or "document") applies the
candidate's role prompt.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel  # not mlflow.pyfunc.PythonModel: a lazy attribute type checkers miss


class EmbeddingModel(PythonModel):
    model: Any  # a model2vec StaticModel or a SentenceTransformer, per settings["backend"]

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["settings"]) as handle:
            self.settings = json.load(handle)
        path = context.artifacts["model"]
        if self.settings["backend"] == "model2vec":
            from model2vec import StaticModel

            self.model = StaticModel.from_pretrained(path)
        else:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(
                path,
                device="cpu",
                trust_remote_code=False,
                local_files_only=True,
                model_kwargs={"use_safetensors": True},
            )

    # No type hints here: MLflow would derive a signature from them (the logged one is explicit).
    def predict(self, context, model_input, params=None):
        texts = _texts(model_input)
        settings = self.settings
        prompt = settings["prompts"].get((params or {}).get("role") or "symmetric")
        if settings["backend"] == "model2vec":
            embeddings = self.model.encode(
                [(prompt or "") + text for text in texts],
                max_length=settings["max_length"],
                batch_size=settings["batch_size"],
            )
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if settings["normalize"]:
                norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
                embeddings = embeddings / np.maximum(norms, 1e-12)
            return embeddings
        embeddings = self.model.encode(
            texts,
            prompt=prompt,
            normalize_embeddings=settings["normalize"],
            batch_size=settings["batch_size"],
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
