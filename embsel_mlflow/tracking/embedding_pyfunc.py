"""An embedding model (select's champion, train's result) as an MLflow pyfunc model.

MLflow "models from code": see tracking/embedding_model.py, which logs it.

MLflow copies this file into the logged model, so it imports only what serving needs
(and ``exported_forward.py`` and ``stored_embedding_math.py``, logged beside it): a
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
            self.model = _sentence_transformer(path, self.settings.get("variant") or {})

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
        variant = settings.get("variant") or {}
        from exported_forward import torch_threads_for  # see _sentence_transformer

        with torch_threads_for(variant.get("backend", "torch")):
            embeddings = self.model.encode(
                texts,
                prompt=prompt,
                normalize_embeddings=settings["normalize"],
                batch_size=settings["batch_size"],
                convert_to_numpy=True,
            )
        return _stored(np.asarray(embeddings, dtype=np.float32), variant)


def _sentence_transformer(path: str, variant: dict) -> Any:
    """The saved model, run as the variant was evaluated: precision, int8 dynamic, OpenVINO, ONNX."""
    import torch
    from sentence_transformers import SentenceTransformer

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    kwargs: dict[str, Any] = {"use_safetensors": True}
    backend = variant.get("backend", "torch")
    if backend == "torch" and variant.get("precision") in dtypes:
        kwargs["dtype"] = dtypes[variant["precision"]]
    model = SentenceTransformer(
        path, device="cpu", trust_remote_code=False, local_files_only=True, model_kwargs=kwargs
    )
    transformer: Any = model[0]
    if backend == "torch" and variant.get("quantization") == "int8_dynamic":
        transformer.model = torch.ao.quantization.quantize_dynamic(
            transformer.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    # Logged beside this file (code_paths), on sys.path once MLflow loads the model (not while it
    # saves it): the same OpenVINO and ONNX Runtime forwards as evaluation.
    from exported_forward import onnx_forward, onnx_session, openvino_forward

    if backend == "openvino":
        import openvino as ov

        forward, _ = openvino_forward(
            ov.Core().read_model(f"{path}/openvino/model.xml"), variant.get("ov_precision", "f32")
        )
        transformer.model.forward = forward
    if backend == "onnx":
        transformer.model.forward = onnx_forward(onnx_session(f"{path}/onnx/model.onnx"))
    return model


def _stored(embeddings: np.ndarray, variant: dict) -> np.ndarray:
    """Truncated, int8 (bucket centres of the calibrated ranges) or +-1 bits, as evaluated.

    The arithmetic of evaluation itself: ``stored_embedding_math.py``, logged beside this file
    (``code_paths``; this file must not import embsel_mlflow: MLflow serves it alone).
    """
    from stored_embedding_math import to_scored

    ranges = variant.get("ranges")
    return to_scored(
        embeddings,
        variant.get("embedding_dtype", "float32"),
        variant.get("truncate_dim") or None,
        None if ranges is None else np.asarray(ranges, dtype=np.float32),
    )


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
