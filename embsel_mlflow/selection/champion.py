"""Log the winner as an MLflow pyfunc model and register it with the ``champion`` alias.

The model is a custom pyfunc (``champion_model.py``) over the saved sentence-transformers
directory, not ``mlflow.sentence_transformers`` (which loads with trust_remote_code=True).
Requirements are pinned explicitly: inferring them imports the model again (~8 s).
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ModelError
from embsel_mlflow.selection.efficiency import uncached

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARTIFACT_PATH = "champion"
ROLES = {"symmetric": None, "query": "query", "document": "document"}
REQUIREMENTS = ("mlflow", "sentence-transformers", "transformers", "torch", "numpy", "pandas", "safetensors")


def pip_requirements() -> list[str]:
    """Exact versions of what the champion needs (local version tags like +cpu dropped)."""
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _sentence_transformer(model: Any, name: str) -> Any:
    inner = uncached(model)
    st_model = getattr(inner, "model", None)
    if not getattr(inner, "registrable", True) or st_model is None or not hasattr(st_model, "save"):
        raise ModelError(
            f"candidate '{name}' (kind {getattr(getattr(inner, 'config', None), 'kind', '?')}) cannot be "
            "registered as an embedding model; register a transformer or static candidate"
        )
    return inner, st_model


def save_champion(model: Any, name: str, directory: Path) -> Path:
    """Save ``model`` as a pyfunc model directory under ``directory``; return its path."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inner, st_model = _sentence_transformer(model, name)
    import numpy as np

    weights = directory / "weights"
    st_model.save(str(weights), safe_serialization=True)
    settings = {
        "name": name,
        "prompts": {role: inner.prompt(r) if hasattr(inner, "prompt") else None for role, r in ROLES.items()},
        "normalize": bool(getattr(inner.config, "normalize", False)),
        "batch_size": int(getattr(inner.config, "batch_size", 32)),
        "identity": {
            k: v for k, v in getattr(inner, "identity", {}).items() if isinstance(v, str | int | bool)
        },
    }
    settings_file = directory / "settings.json"
    settings_file.write_text(json.dumps(settings, indent=2))
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(inner.embedding_dim)))]),
        params=ParamSchema([ParamSpec("role", "string", "symmetric")]),
    )
    path = directory / "pyfunc"
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(Path(__file__).with_name("champion_model.py")),
        artifacts={"model": str(weights), "settings": str(settings_file)},
        signature=signature,
        pip_requirements=pip_requirements(),
    )
    return path


def register_champion(
    client: MlflowClient, run_id: str, model: Any, candidate: str, registered_name: str, alias: str
) -> str:
    """Log the champion into run ``run_id``, register it as ``registered_name`` with ``alias``.

    Returns the new model version.
    """
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="embsel-champion-") as tmp:
        path = save_champion(model, candidate, Path(tmp))
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
