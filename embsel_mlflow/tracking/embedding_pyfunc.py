"""An embedding model (select's champion, train's result) as an MLflow pyfunc model.

MLflow "models from code": see tracking/embedding_model.py, which logs it.

MLflow copies this file into the logged model, so it imports only what serving needs
(and ``exported_forward.py`` and ``stored_embedding_math.py``, logged beside it): a
sentence-transformers directory (trust_remote_code off, safetensors only) or a model2vec
static model. ``predict(texts)`` returns float32 embeddings, one row per text, exactly as the
candidate encoded them in evaluation; ``params={"role": "query"}`` (or "document") applies the
candidate's role prompt.

An image or audio model (``settings["backend"] == "media"``: ``models/media_model.py`` has the
contract) also takes images or clips, as local paths or base64 text: ``params={"modality":
"image"}`` (or "audio", "text") says which, else it is detected from the values (file paths and
decoded bytes by their first bytes; anything else is text). They are decoded with ``media_io``
(logged beside this file) and embedded by the kind's own forward module, as in evaluation.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel  # not mlflow.pyfunc.PythonModel: a lazy attribute type checkers miss

MEDIA = "media"


class EmbeddingModel(PythonModel):
    # a model2vec StaticModel, a SentenceTransformer, or a media forward object, per settings["backend"]
    model: Any

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["settings"]) as handle:
            self.settings = json.load(handle)
        path = context.artifacts["model"]
        if self.settings["backend"] == MEDIA:
            import importlib

            serving = self.settings["serving"]
            # logged beside this file (code_paths): the kind's self-contained forward module
            self.model = importlib.import_module(serving["module"]).load(path, serving)
        elif self.settings["backend"] == "model2vec":
            from model2vec import StaticModel

            self.model = StaticModel.from_pretrained(path)
        else:
            self.model = _sentence_transformer(path, self.settings.get("variant") or {})

    # ``model_input``: what MLflow hands over after checking the logged (explicit) signature, a
    # one-column DataFrame. A DataFrame hint is one MLflow derives no signature from, and without
    # any hint it warns on every import of this file (each log and load).
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        if self.settings["backend"] == MEDIA:
            return _predict_media(self.model, self.settings, _values(model_input), params or {})
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


def _values(model_input: Any) -> list[Any]:
    """The inputs as a list (bytes kept as bytes) from a list, a Series, or a one-column DataFrame."""
    if hasattr(model_input, "columns"):
        model_input = model_input[model_input.columns[0]]
    if hasattr(model_input, "tolist"):
        model_input = model_input.tolist()
    if isinstance(model_input, (str, bytes)):
        return [model_input]
    return list(model_input)


def _predict_media(model: Any, settings: dict, values: list[Any], params: dict) -> np.ndarray:
    """Texts, images or clips (paths or base64) of one modality -> float32 embeddings, batch by batch."""
    from media_io import (
        MAX_AUDIO_SECONDS,
        MAX_IMAGE_PIXELS,
        BadMediaFile,
        decode_input,
        open_image,
        read_audio,
    )

    serving = settings["serving"]
    modalities = list(serving["modalities"])
    modality = params.get("modality") or "auto"
    if modality == "auto":
        modality = detect_modality(values, modalities)
    if modality not in modalities:
        raise ValueError(f"this model embeds {' and '.join(modalities)}, not {modality}")
    if modality == "text":
        prompt = settings["prompts"].get(params.get("role") or "symmetric") or ""
        values = [prompt + str(value) for value in values]
    size = max(1, int(settings.get("batch_size", 32)))
    parts = []
    for start in range(0, len(values), size):
        batch = values[start : start + size]
        decoded = []
        for offset, value in enumerate(batch):
            try:
                if modality == "image":
                    limit = int(serving.get("max_image_pixels") or MAX_IMAGE_PIXELS)
                    decoded.append(open_image(decode_input(value), max_pixels=limit))
                elif modality == "audio":
                    seconds = float(serving.get("max_audio_seconds") or MAX_AUDIO_SECONDS)
                    rate = int(serving["sample_rate"])
                    decoded.append(read_audio(decode_input(value), sample_rate=rate, max_seconds=seconds))
                else:
                    decoded.append(value)
            except BadMediaFile as err:
                raise ValueError(f"input {start + offset}: {err}") from None
        parts.append(np.asarray(model.encode(decoded, modality), dtype=np.float32))
    if not parts:
        return np.empty((0, int(settings.get("dim") or 0)), dtype=np.float32)
    return np.concatenate(parts)


# The first bytes of the formats Pillow and libsndfile read, by modality.
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")
_AUDIO_MAGIC = (b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"FORM")


def sniff(head: bytes) -> str | None:
    """``image``, ``audio`` or None from the first bytes of a file."""
    if head.startswith(b"RIFF") and head[8:12] in (b"WAVE", b"WEBP"):
        return "audio" if head[8:12] == b"WAVE" else "image"
    if head.startswith(_IMAGE_MAGIC):
        return "image"
    if head.startswith(_AUDIO_MAGIC):
        return "audio"
    return None


def _value_modality(value: Any) -> str:
    """The modality of one served value: a file or base64 bytes of an image or clip, else text."""
    import base64
    import binascii
    import os

    if isinstance(value, (bytes, bytearray, memoryview)):
        return sniff(bytes(value[:16])) or "unknown bytes"
    text = str(value)
    if 0 < len(text) < 4096 and os.path.isfile(text):
        with open(text, "rb") as handle:
            return sniff(handle.read(16)) or "text"
    if len(text) >= 16 and len(text) % 4 == 0:
        try:
            return sniff(base64.b64decode(text[:24], validate=True)) or "text"
        except (binascii.Error, ValueError):
            return "text"
    return "text"


def detect_modality(values: list[Any], modalities: list[str]) -> str:
    """The one modality of ``values``; a model of one modality takes its own without looking."""
    if len(modalities) == 1:
        return modalities[0]
    found = {_value_modality(value) for value in values} or {"text"}
    if len(found) > 1:
        raise ValueError(
            f"inputs of several kinds ({', '.join(sorted(found))}): send one modality per request, "
            'or say which with params={"modality": "image"}'
        )
    return found.pop()


mlflow.models.set_model(EmbeddingModel())
