"""Log the winner as an MLflow pyfunc model and register it with the ``champion`` alias.

The model is a custom pyfunc (``champion_model.py``) over the saved sentence-transformers
directory, not ``mlflow.sentence_transformers`` (which loads with trust_remote_code=True).
Requirements are pinned explicitly: inferring them imports the model again (~8 s).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ModelError
from embsel_mlflow.selection.efficiency import uncached

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.config.schema import ModelConfig

ARTIFACT_PATH = "champion"
REQUIREMENTS = {
    "sentence_transformers": ("sentence-transformers", "transformers", "torch", "safetensors"),
    "model2vec": ("model2vec", "safetensors", "tokenizers"),
}


def pip_requirements(backend: str) -> list[str]:
    """Exact versions of what the champion needs (local version tags like +cpu dropped)."""
    pins = []
    for package in ("mlflow", *REQUIREMENTS[backend], "numpy", "pandas"):
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _saved_weights(model: Any, name: str, weights: Path) -> str:
    """Save the candidate's weights under ``weights``; the pyfunc backend that loads them."""
    inner = uncached(model)
    if not getattr(inner, "registrable", False):
        raise not_registrable(name, _kind(inner))
    model_dir = getattr(inner, "model_dir", None)
    if model_dir is not None:  # a model2vec static model: its directory as it is
        shutil.copytree(model_dir, weights)
        return "model2vec"
    st_model = getattr(inner, "model", None)
    if st_model is None or not hasattr(st_model, "save"):
        raise ModelError(
            f"candidate '{name}' ({_kind(inner)}) has no saveable model; it cannot be registered"
        )
    st_model.save(str(weights), safe_serialization=True)
    return "sentence_transformers"


def not_registrable(name: str, kind: str) -> ModelError:
    """The error for a winner that is no embedding model to register (LSA, BM25)."""
    return ModelError(
        f"candidate '{name}' ({kind}) cannot be registered as an embedding model; "
        "choose a transformer or static candidate, or drop select.register"
    )


def _kind(inner: Any) -> str:
    return f"a {type(inner).__name__}"


def save_champion(model: Any, cfg: ModelConfig, name: str, directory: Path) -> Path:
    """Save ``model`` (loaded from ``cfg``) as a pyfunc model directory under ``directory``."""
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inner = uncached(model)
    weights = directory / "weights"
    backend = _saved_weights(model, name, weights)
    settings = {
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
    }
    settings_file = directory / "settings.json"
    settings_file.write_text(json.dumps(settings, indent=2))
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(inner.embedding_dim)))]),
        params=ParamSchema([ParamSpec("role", "string", "symmetric")]),
    )
    path = directory / "pyfunc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no input example": one would load the model again
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(Path(__file__).with_name("champion_model.py")),
            artifacts={"model": str(weights), "settings": str(settings_file)},
            signature=signature,
            pip_requirements=pip_requirements(backend),
        )
    return path


def register_champion(
    client: MlflowClient,
    run_id: str,
    model: Any,
    candidate: str,
    registered_name: str,
    alias: str,
    *,
    cfg: ModelConfig | None = None,
) -> str:
    """Log the champion into run ``run_id``, register it as ``registered_name`` with ``alias``.

    ``cfg`` is the candidate's model config (default: the model's own ``config``). Returns the
    new model version.
    """
    if cfg is None:
        cfg = uncached(model).config
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="embsel-champion-") as tmp:
        path = save_champion(model, cfg, candidate, Path(tmp))
        client.log_artifacts(run_id, str(path), ARTIFACT_PATH)
    try:
        client.create_registered_model(registered_name)
    except MlflowException as err:
        if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}"
    version = client.create_model_version(
        registered_name, source, run_id=run_id, tags={"embsel.candidate": candidate}
    ).version
    client.set_registered_model_alias(registered_name, alias, version)
    return str(version)
