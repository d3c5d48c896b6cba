"""Log an embedding model as an MLflow pyfunc model, and register it: one path for every step.

``select`` logs its champion and ``train`` its fine-tuned model through these functions. The
model is a custom pyfunc (``embedding_pyfunc.py``) over a saved sentence-transformers (or
model2vec) directory, not ``mlflow.sentence_transformers``, which loads with
trust_remote_code=True. Requirements are pinned explicitly: inferring them imports the model
again (~8 s). The signature is explicit too, so the input example is stored, never run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ModelError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.config.schema import ModelConfig

PYFUNC_FILE = Path(__file__).with_name("embedding_pyfunc.py")
# The pyfunc's one import of this package's code, logged beside it (MLflow puts it on sys.path)
FORWARD_FILE = Path(__file__).parents[1] / "models" / "exported_forward.py"
INPUT_EXAMPLE = ["A short sentence to embed.", "Another text, one embedding per row."]
REQUIREMENTS = {
    "sentence_transformers": ("sentence-transformers", "transformers", "torch", "safetensors"),
    "model2vec": ("model2vec", "safetensors", "tokenizers"),
}
# What a variant's exported transformer runs on (model.variant.backend), besides the above.
VARIANT_RUNTIMES = {"openvino": ("openvino",), "onnx": ("onnxruntime",)}


def pip_requirements(backend: str, variant_backend: str = "torch") -> list[str]:
    """Exact versions of what the logged model needs (local version tags like +cpu dropped)."""
    pins = []
    runtime = VARIANT_RUNTIMES.get(variant_backend, ())
    for package in ("mlflow", *REQUIREMENTS[backend], *runtime, "numpy", "pandas"):
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _uncached(model: Any) -> Any:
    """The model behind an embedding cache (``inner``), or the model itself."""
    return getattr(model, "inner", model)


def _saved_weights(model: Any, name: str, weights: Path) -> str:
    """Save the candidate's weights under ``weights``; the pyfunc backend that loads them."""
    inner = _uncached(model)
    if not getattr(inner, "registrable", False):
        raise ModelError(
            f"candidate '{name}' (a {type(inner).__name__}) cannot be logged as an embedding model; "
            "choose a transformer or static candidate"
        )
    model_dir = getattr(inner, "model_dir", None)
    if model_dir is not None:  # a model2vec static model: its directory as it is
        shutil.copytree(model_dir, weights)
        return "model2vec"
    st_model = getattr(inner, "model", None)
    if st_model is None or not hasattr(st_model, "save"):
        raise ModelError(f"candidate '{name}' (a {type(inner).__name__}) has no saveable model")
    from embsel_mlflow.models.backends import saveable

    with saveable(st_model, weights):  # as the variant runs (bf16 weights, OpenVINO model, ...)
        st_model.save(str(weights), safe_serialization=True)
    return "sentence_transformers"


def embedding_settings(model: Any, cfg: ModelConfig, name: str, backend: str) -> dict[str, Any]:
    """What the pyfunc needs besides the weights: prompts per role, normalisation, batching."""
    from embsel_mlflow.models.backends import serving_settings

    inner = _uncached(model)
    return {
        "name": name,
        "backend": backend,
        "prompts": {
            "symmetric": cfg.symmetric_prompt,
            "query": inner.prompt("query") if hasattr(inner, "prompt") else cfg.query_prompt,
            "document": inner.prompt("document") if hasattr(inner, "prompt") else cfg.document_prompt,
        },
        "normalize": bool(cfg.normalize),
        "batch_size": int(cfg.batch_size),
        "max_length": cfg.max_seq_length or 512,
        "variant": serving_settings(inner),  # precision, backend, stored embedding format
    }


def save_embedding_model(
    model: Any, name: str, directory: Path, *, cfg: ModelConfig | None = None, input_example: bool = True
) -> Path:
    """Save ``model`` (a loaded candidate, optionally behind the cache) as a pyfunc model directory.

    ``cfg`` is the candidate's model config (default: the model's own ``config``). Returns the
    pyfunc directory (``directory/pyfunc``); ``directory`` also receives the staged weights.
    """
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inner = _uncached(model)
    cfg = cfg if cfg is not None else inner.config
    weights = directory / "weights"
    backend = _saved_weights(model, name, weights)
    settings_file = directory / "settings.json"
    settings = embedding_settings(model, cfg, name, backend)
    settings_file.write_text(json.dumps(settings, indent=2))
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(inner.embedding_dim)))]),
        params=ParamSchema([ParamSpec("role", "string", "symmetric")]),
    )
    path = directory / "pyfunc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(PYFUNC_FILE),
            code_paths=[str(FORWARD_FILE)],
            artifacts={"model": str(weights), "settings": str(settings_file)},
            signature=signature,
            input_example=list(INPUT_EXAMPLE) if input_example else None,
            pip_requirements=pip_requirements(backend, settings["variant"].get("backend", "torch")),
        )
    return path


def log_embedding_model(
    client: MlflowClient,
    run_id: str,
    model: Any,
    name: str,
    *,
    artifact_path: str = "model",
    cfg: ModelConfig | None = None,
) -> str:
    """Log ``model`` into run ``run_id`` at ``artifact_path``; returns ``runs:/<run_id>/<artifact_path>``."""
    with tempfile.TemporaryDirectory(prefix="embsel-model-") as tmp:
        path = save_embedding_model(model, name, Path(tmp), cfg=cfg)
        client.log_artifacts(run_id, str(path), artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


def register_embedding_model(
    client: MlflowClient,
    run_id: str,
    registered_name: str,
    *,
    artifact_path: str = "model",
    alias: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the model logged at ``artifact_path`` of run ``run_id`` (linked to that run).

    Creates ``registered_name`` if needed; sets ``alias`` on the new version. Returns the version.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(registered_name)
    except MlflowException as err:
        if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(
        registered_name, source, run_id=run_id, tags=dict(tags or {})
    ).version
    if alias:
        client.set_registered_model_alias(registered_name, alias, version)
    return str(version)


def fetch_logged_model(
    run_id: str, directory: Path, *, artifact_path: str = "model", tracking_uri: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Download the weights of a model ``log_embedding_model`` logged in run ``run_id``.

    Returns (the weights directory under ``directory``, the settings: prompts, normalisation, backend).
    """
    from mlflow.artifacts import download_artifacts

    from embsel_mlflow.tracking.store import resolve_tracking_uri

    target = directory / run_id
    weights, settings_file = target / "artifacts" / "weights", target / "artifacts" / "settings.json"
    if not settings_file.is_file():
        target.mkdir(parents=True, exist_ok=True)
        try:
            download_artifacts(
                run_id=run_id,
                artifact_path=f"{artifact_path}/artifacts",
                dst_path=str(target),
                tracking_uri=resolve_tracking_uri(tracking_uri),
            )
        except Exception as exc:
            raise ModelError(
                f"cannot load the model logged in run {run_id} ({type(exc).__name__}); pass the id of a "
                "train run that logged a model (runs:/<id>/model) in this tracking store"
            ) from exc
    if not settings_file.is_file():
        raise ModelError(f"run {run_id} has no embsel model at {artifact_path}/; pass the id of a train run")
    return weights, json.loads(settings_file.read_text())
