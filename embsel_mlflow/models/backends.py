"""Model-side variants: where a loaded transformer runs (torch, OpenVINO) and its int8 quantization.

Everything else of the SentenceTransformer (tokenizer, prompts, pooling, normalisation) stays
as it is: only the transformer's ``forward`` is replaced, so a variant embeds exactly the
texts the fp32 model embeds.

- torch ``int8_dynamic``: ``torch.ao.quantization.quantize_dynamic`` on the Linear layers.
- OpenVINO: ``openvino.convert_model`` of the local torch module (offline; optimum's exporter
  is not used), run with ``INFERENCE_PRECISION_HINT`` pinned to ``model.precision`` (OpenVINO
  otherwise runs bf16 on CPUs that have it). ``int8_static``: ``nncf.quantize`` calibrated on
  the calibration texts; ``int8_dynamic``: ``nncf.compress_weights`` (int8 weights). Exported
  and quantized models are kept under ``<cache>/models/openvino/<key>`` and reused.
- ONNX is refused: see :data:`ONNX_REFUSAL`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import Backend, Precision, Quantization
from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config.schema import ModelConfig
    from embsel_mlflow.models.calibration import CalibrationTexts

log = logging.getLogger("embsel.models")

OPENVINO_EXTRA = 'pip install "embsel-mlflow[openvino]"'
ONNX_REFUSAL = (
    "model.variant.backend=onnx is not available: sentence-transformers' [onnx] extra needs optimum-onnx, "
    "which requires transformers<4.58 and would downgrade the pinned core stack; use "
    f"model.variant.backend=openvino ({OPENVINO_EXTRA}) or precision=bf16 on torch"
)
_OV_PRECISION = {Precision.fp32: "f32", Precision.bf16: "bf16", Precision.fp16: "f16"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def check_backend(cfg: ModelConfig) -> None:
    """Refuse a backend/quantization/precision combination before anything is loaded (one line)."""
    variant = cfg.variant
    backend, quantization = Backend(variant.backend), Quantization(variant.quantization)
    precision = Precision(cfg.precision)
    if backend is Backend.onnx:
        raise ConfigError(ONNX_REFUSAL)
    if backend is Backend.openvino:
        missing = [name for name in ("openvino", "nncf") if importlib.util.find_spec(name) is None]
        needed = ["openvino"] + (["nncf"] if quantization is not Quantization.none else [])
        if set(missing) & set(needed):
            raise ConfigError(
                f"model.variant.backend=openvino needs {' and '.join(m for m in needed if m in missing)}, "
                f"which is not installed: {OPENVINO_EXTRA}"
            )
    if backend is Backend.torch and quantization is Quantization.int8_static:
        raise ConfigError(
            "model.variant.quantization=int8_static needs model.variant.backend=openvino "
            "(nncf calibrates it); torch offers int8_dynamic"
        )
    if (
        backend is Backend.torch
        and quantization is Quantization.int8_dynamic
        and precision is not Precision.fp32
    ):
        raise ConfigError(
            f"model.variant.quantization=int8_dynamic quantizes fp32 weights; set model.precision=fp32 "
            f"(got {precision.value})"
        )


def needs_calibration(cfg: ModelConfig) -> bool:
    return Quantization(cfg.variant.quantization) is Quantization.int8_static


def model_variant_identity(cfg: ModelConfig, calibration: CalibrationTexts | None) -> dict[str, Any] | None:
    """The model-side variant (None for plain torch): part of the model identity and cache key."""
    backend, quantization = Backend(cfg.variant.backend), Quantization(cfg.variant.quantization)
    if backend is Backend.torch and quantization is Quantization.none:
        return None
    found: dict[str, Any] = {"backend": backend.value, "quantization": quantization.value}
    if quantization is Quantization.int8_static and calibration is not None:
        found["calibration"] = calibration.describe()
    return found


def apply_backend(
    model: SentenceTransformer,
    cfg: ModelConfig,
    *,
    calibration: CalibrationTexts | None,
    models_dir: Path | None,
    key: str,
) -> dict[str, Any]:
    """Switch ``model``'s transformer to the variant's backend in place; what it really runs."""
    backend, quantization = Backend(cfg.variant.backend), Quantization(cfg.variant.quantization)
    if backend is Backend.torch:
        if quantization is Quantization.int8_dynamic:
            import torch

            transformer: Any = model[0]
            float_model = transformer.model
            transformer.model = torch.ao.quantization.quantize_dynamic(
                float_model, {torch.nn.Linear}, dtype=torch.qint8
            )
            # the quantized modules cannot be saved as safetensors: the champion saves these
            # weights and quantizes them again when it loads (deterministic)
            transformer.embsel_float_model = float_model
        return {
            "backend": "torch",
            "precision": Precision(cfg.precision).value,
            "quantization": quantization.value,
        }
    return _to_openvino(model, cfg, calibration, models_dir, key)


def _to_openvino(
    model: SentenceTransformer,
    cfg: ModelConfig,
    calibration: CalibrationTexts | None,
    models_dir: Path | None,
    key: str,
) -> dict[str, Any]:
    import openvino as ov
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    transformer: Any = model[0]
    quantization = Quantization(cfg.variant.quantization)
    cached = models_dir / "openvino" / key / "model.xml" if models_dir is not None else None
    if cached is not None and cached.is_file():
        ov_model = ov.Core().read_model(cached)
    else:
        ov_model = _export(model, cfg, calibration)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(ov_model, cached, compress_to_fp16=False)
    hint = _OV_PRECISION[Precision(cfg.precision)]
    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    ran = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    names = [port.get_any_name() for port in compiled.inputs]
    torch_dtype = next(transformer.model.parameters()).dtype

    def forward(**features: Any) -> BaseModelOutput:
        inputs = {name: features[name].numpy() for name in names}
        hidden = compiled(inputs)[0]
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden).to(torch_dtype))

    transformer.model.forward = forward  # ST keeps tokenising, pooling and normalising
    transformer.embsel_openvino_model = ov_model  # saved beside the weights for serving
    size = cached.with_suffix(".bin").stat().st_size if cached is not None else None
    return {
        "backend": "openvino",
        "precision": ran.lower().replace("<type: '", "").replace("'>", ""),
        "quantization": quantization.value,
        "ir_bytes": size,
    }


def _export(model: SentenceTransformer, cfg: ModelConfig, calibration: CalibrationTexts | None) -> Any:
    """Convert the torch transformer to OpenVINO (dynamic batch and length), quantize if asked."""
    import openvino as ov
    import torch

    transformer: Any = model[0]
    features = transformer.tokenize(["a short example", "another, somewhat longer example text"])
    example = {name: features[name] for name in _INPUTS if name in features}
    with torch.no_grad():
        ov_model = ov.convert_model(
            transformer.model.float(),
            example_input=example,
            input=[(name, [-1, -1], ov.Type.i64) for name in example],
        )
    quantization = Quantization(cfg.variant.quantization)
    if quantization is Quantization.none:
        return ov_model
    import nncf

    if quantization is Quantization.int8_dynamic:
        return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    assert calibration is not None  # checked before loading
    items = [
        {name: tensor.numpy() for name, tensor in transformer.tokenize([text]).items() if name in example}
        for text in calibration.texts
    ]
    return nncf.quantize(
        ov_model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )


def backend_key(identity: dict[str, Any]) -> str:
    """Where an exported model is kept: the model identity (weights, variant, calibration)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


OPENVINO_DIR = "openvino"  # beside the saved weights: the (quantized) OpenVINO model the champion runs


@contextmanager
def saveable(model: SentenceTransformer, directory: Path) -> Iterator[None]:
    """Save ``model`` as its variant runs: float weights for torch int8_dynamic (re-quantized on
    load), plus the OpenVINO model under ``directory/openvino``."""
    transformer: Any = model[0]
    float_model = getattr(transformer, "embsel_float_model", None)
    quantized = transformer.model
    if float_model is not None:
        transformer.model = float_model
    try:
        yield
    finally:
        transformer.model = quantized
    ov_model = getattr(transformer, "embsel_openvino_model", None)
    if ov_model is not None:
        import openvino as ov

        ov.save_model(ov_model, directory / OPENVINO_DIR / "model.xml", compress_to_fp16=False)


def serving_settings(model: Any) -> dict[str, Any]:
    """What the champion's pyfunc needs to run as the variant ran: precision, backend, stored format."""
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "variant"):
        return {}
    settings: dict[str, Any] = {
        "precision": Precision(cfg.precision).value,
        "backend": Backend(cfg.variant.backend).value,
        "quantization": Quantization(cfg.variant.quantization).value,
        "ov_precision": _OV_PRECISION[Precision(cfg.precision)],
    }
    fmt = getattr(model, "format", None)  # a StoredEmbeddingEncoder's EmbeddingFormat
    if fmt is not None:
        settings["embedding_dtype"] = str(getattr(fmt.dtype, "value", fmt.dtype))
        settings["truncate_dim"] = fmt.truncate_dim
        settings["ranges"] = fmt.ranges.tolist() if fmt.ranges is not None else None
    return settings
