"""Model-side variants: where a transformer runs (torch, OpenVINO, ONNX Runtime) and its int8 quantization.

Everything else of the SentenceTransformer (tokenizer, prompts, pooling, normalisation) stays
as it is: only the transformer's ``forward`` is replaced, so a variant embeds exactly the
texts the fp32 model embeds.

- torch ``int8_dynamic``: ``torch.ao.quantization.quantize_dynamic`` on the Linear layers.
- OpenVINO: ``openvino.convert_model`` of the local torch module (offline; optimum's exporter
  is not used), run with ``INFERENCE_PRECISION_HINT`` pinned to ``model.precision`` (OpenVINO
  otherwise runs bf16 on CPUs that have it). ``int8_static``: ``nncf.quantize`` calibrated on
  the calibration texts; ``int8_dynamic``: ``nncf.compress_weights`` (int8 weights). Exported
  and quantized models are kept under ``<cache>/models/openvino/<key>`` and reused.
- ONNX Runtime: the transformer (token embeddings only) exported with ``torch.onnx.export``
  from the local weights, dynamic batch and sequence axes; ``int8_dynamic``:
  ``onnxruntime.quantization.quantize_dynamic`` (int8 MatMul weights, activations quantized on the
  fly). Kept under ``<cache>/models/onnx/<key>``. Not sentence-transformers' own ``backend="onnx"``:
  it needs optimum-onnx, which requires transformers<4.58.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import Backend, Precision, Quantization
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.models.device import resolve_precision
from embsel_mlflow.models.exported_forward import onnx_forward, onnx_session, openvino_forward

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.calibration import CalibrationTexts

log = logging.getLogger("embsel.models")

# The packages an exported backend needs, and the command that installs them.
EXTRAS = {
    Backend.openvino: 'pip install "embsel-mlflow[openvino]"',
    Backend.onnx: 'pip install "embsel-mlflow[onnx]"',
}
ONNX_FILE = "model.onnx"
_OV_PRECISION = {Precision.fp32: "f32", Precision.bf16: "bf16", Precision.fp16: "f16"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def check_backend(cfg: ModelConfig) -> None:
    """Refuse a backend/quantization/precision combination before anything is loaded (one line)."""
    variant = cfg.variant
    backend, quantization = Backend(variant.backend), Quantization(variant.quantization)
    # auto is never refused: on ONNX and int8_dynamic it resolves to fp32 (device.resolve_precision)
    precision = Precision.fp32 if Precision(cfg.precision) is Precision.auto else Precision(cfg.precision)
    if backend is Backend.onnx:
        # invalid whatever is installed: refused before the extra is looked for
        if quantization is Quantization.int8_static:
            raise ConfigError(
                "model.variant.quantization=int8_static is not offered on backend=onnx; use "
                "quantization=int8_dynamic there, or backend=openvino for calibrated int8"
            )
        if precision is not Precision.fp32:
            raise ConfigError(
                f"model.variant.backend=onnx runs its fp32 export (no {precision.value} on this backend); "
                f"set model.precision=fp32, or use backend=torch or openvino for {precision.value}"
            )
    if backend in EXTRAS:
        needed = _modules_needed(backend, quantization)
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(
                f"model.variant.backend={backend.value} needs {' and '.join(missing)}, which is not "
                f"installed: {EXTRAS[backend]}"
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


def _modules_needed(backend: Backend, quantization: Quantization) -> list[str]:
    """The modules of the backend's extra that this variant imports."""
    if backend is Backend.openvino:
        return ["openvino"] + (["nncf"] if quantization is not Quantization.none else [])
    return ["onnxruntime", "onnx", "onnxscript"]  # run, quantize, export (torch's dynamo exporter)


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
            "precision": resolve_precision(cfg).value,
            "quantization": quantization.value,
        }
    if backend is Backend.onnx:
        return _to_onnx(model, quantization, _export_dir(models_dir, backend, key))
    return _to_openvino(model, cfg, calibration, models_dir, key)


def _export_dir(models_dir: Path | None, backend: Backend, key: str) -> Path | None:
    """Where a backend's export of the model ``key`` is kept: ``<cache>/models/<backend>/<key>``."""
    return models_dir / backend.value / key if models_dir is not None else None


def _to_openvino(
    model: SentenceTransformer,
    cfg: ModelConfig,
    calibration: CalibrationTexts | None,
    models_dir: Path | None,
    key: str,
) -> dict[str, Any]:
    import openvino as ov

    transformer: Any = model[0]
    quantization = Quantization(cfg.variant.quantization)
    export_dir = _export_dir(models_dir, Backend.openvino, key)
    cached = export_dir / "model.xml" if export_dir is not None else None
    if cached is not None and cached.is_file():
        ov_model = ov.Core().read_model(cached)
    else:
        ov_model = _export(model, cfg, calibration)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(ov_model, cached, compress_to_fp16=False)
    forward, ran = openvino_forward(ov_model, _OV_PRECISION[resolve_precision(cfg)])
    transformer.model.forward = forward  # ST keeps tokenising, pooling and normalising
    transformer.embsel_openvino_model = ov_model  # saved beside the weights for serving
    size = cached.with_suffix(".bin").stat().st_size if cached is not None else None
    return {
        "backend": "openvino",
        "precision": ran,
        "quantization": quantization.value,
        "ir_bytes": size,
    }


def _export(model: SentenceTransformer, cfg: ModelConfig, calibration: CalibrationTexts | None) -> Any:
    """Convert the torch transformer to OpenVINO (dynamic batch and length), quantize if asked."""
    import openvino as ov
    import torch

    transformer: Any = model[0]
    example = _example_inputs(transformer)
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
        {name: tensor.numpy() for name, tensor in transformer.preprocess([text]).items() if name in example}
        for text in calibration.texts
    ]
    return nncf.quantize(
        ov_model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )


def _example_inputs(transformer: Any) -> dict[str, Any]:
    """Tokenised example texts of two lengths (padded), to trace the transformer for export."""
    features = transformer.preprocess(["a short example", "another, somewhat longer example text"])
    return {name: features[name] for name in _INPUTS if name in features}


def _to_onnx(model: SentenceTransformer, quantization: Quantization, cached: Path | None) -> dict[str, Any]:
    """Run the transformer's ONNX export (made once per key) in an ONNX Runtime CPU session."""
    transformer: Any = model[0]
    if cached is None or not (cached / ONNX_FILE).is_file():
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
        # exported beside its final place, then renamed: an interrupted export is never reused
        directory = Path(tempfile.mkdtemp(prefix="embsel-onnx-", dir=cached.parent if cached else None))
        try:
            _export_onnx(transformer, quantization, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        if cached is None:  # no cache: the export lives as long as the model
            cached = directory
            weakref.finalize(transformer, shutil.rmtree, str(directory), True)
        else:
            try:  # another process may have kept the same export meanwhile: either copy serves
                directory.rename(cached)
            except OSError:
                shutil.rmtree(directory, ignore_errors=True)
    session = onnx_session(str(cached / ONNX_FILE))
    transformer.model.forward = onnx_forward(session)  # ST keeps tokenising, pooling and normalising
    transformer.embsel_onnx_dir = cached  # copied beside the weights for serving
    return {
        "backend": "onnx",
        "precision": "float32",  # the fp32 export; int8_dynamic: int8 MatMul weights and activations
        "quantization": quantization.value,
        "providers": session.get_providers(),
        "ir_bytes": sum(path.stat().st_size for path in cached.iterdir() if path.is_file()),
    }


def _export_onnx(transformer: Any, quantization: Quantization, directory: Path) -> None:
    """``directory/model.onnx``: token embeddings, dynamic batch and sequence axes; int8 if asked."""
    import torch

    example = _example_inputs(transformer)
    # DYNAMIC, not named Dims: the model may bound the length (its position table) without
    # failing the export, and a dimension it fixes to the example's size is an error
    dynamic = torch.export.Dim.DYNAMIC
    fp32 = directory / ("fp32.onnx" if quantization is not Quantization.none else ONNX_FILE)
    # the exporter warns once per torchvision operator it cannot register: noise here
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                _token_embeddings(transformer.model),
                (),
                kwargs=example,
                output_names=["token_embeddings"],
                dynamic_shapes={name: {0: dynamic, 1: dynamic} for name in example},
                dynamo=True,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    assert program is not None  # the dynamo exporter returns its program
    program.save(str(fp32), external_data=True)  # weights beside the graph: no 2 GB protobuf limit
    if quantization is Quantization.none:
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # int8 weights per output channel on the Linear MatMuls, uint8 activations quantized per
    # batch at run time (VNNI kernels); embeddings, LayerNorm and softmax stay fp32
    quantize_dynamic(
        fp32,
        directory / ONNX_FILE,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        use_external_data_format=True,
    )
    for path in directory.glob("fp32.onnx*"):
        path.unlink()


def _token_embeddings(model: Any) -> Any:
    """The HF model as a module ``(input_ids, attention_mask[, token_type_ids]) -> last_hidden_state``."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            return self.model(**features, return_dict=True)[0]  # no pooler output in the graph

    return TokenEmbeddings().eval()


def backend_key(identity: dict[str, Any]) -> str:
    """Where an exported model is kept: the model identity (weights, variant, calibration).

    Not its precision: exports are made from the fp32 weights, and OpenVINO takes the precision
    as a run-time hint, so ``openvino-int8`` and ``openvino-int8-bf16`` share one calibrated model.
    """
    exported = {key: value for key, value in identity.items() if key != "precision"}
    text = json.dumps(exported, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# beside the saved weights: the (quantized) OpenVINO or ONNX model the champion runs
OPENVINO_DIR, ONNX_DIR = "openvino", "onnx"


@contextmanager
def saveable(model: SentenceTransformer, directory: Path) -> Iterator[None]:
    """Save ``model`` as its variant runs: float weights for torch int8_dynamic (re-quantized on
    load), plus the OpenVINO model under ``directory/openvino`` or the ONNX one under ``directory/onnx``."""
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
    onnx_dir = getattr(transformer, "embsel_onnx_dir", None)
    if onnx_dir is not None:
        shutil.copytree(onnx_dir, directory / ONNX_DIR)


def serving_settings(model: Any) -> dict[str, Any]:
    """What the champion's pyfunc needs to run as the variant ran: precision, backend, stored format."""
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "variant"):
        return {}
    precision = resolve_precision(cfg)  # as it ran here (auto resolved)
    settings: dict[str, Any] = {
        "precision": precision.value,
        "backend": Backend(cfg.variant.backend).value,
        "quantization": Quantization(cfg.variant.quantization).value,
        "ov_precision": _OV_PRECISION[precision],
    }
    fmt = getattr(model, "format", None)  # a StoredEmbeddingEncoder's EmbeddingFormat
    if fmt is not None:
        settings["embedding_dtype"] = str(getattr(fmt.dtype, "value", fmt.dtype))
        settings["truncate_dim"] = fmt.truncate_dim
        settings["ranges"] = fmt.ranges.tolist() if fmt.ranges is not None else None
    return settings
