"""A registered embedding model (``models:/NAME@alias`` or ``models:/NAME/3``) as a model config.

The registered pyfunc holds the model's own directory (``weights``: a sentence-transformers or
model2vec folder) and ``settings.json`` (prompts, normalisation, batch size), read as every
logged model is (``embedding_model.read_logged_model``). Monitoring loads
that directory through the normal model path (``build_encoder``), so its embeddings go through
the embedding cache and equal the ones the champion was selected with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config import ModelConfig
from embsel_mlflow.errors import ModelError, first_line
from embsel_mlflow.tracking.embedding_model import read_logged_model

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class RegisteredModel:
    uri: str
    name: str
    version: str
    run_id: str | None  # the run that logged it (select's parent run): the quality baseline
    candidate: str | None  # the candidate option it was selected as (select's tag)
    config: ModelConfig


def load_registered_model(client: MlflowClient, uri: str, directory: Path) -> RegisteredModel:
    """Download ``uri`` into ``directory`` and describe it as a ModelConfig; ModelError when it cannot."""
    import mlflow.artifacts

    name, version = _model_version(client, uri)
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=version.source, dst_path=str(directory), tracking_uri=client.tracking_uri
            )
        )
    except Exception as exc:  # missing artifacts, unreachable artifact store
        raise ModelError(f"cannot download the reference model {uri}: {first_line(exc)}") from exc
    logged = read_logged_model(
        local,
        missing=f"{uri} is not an embsel embedding model (no settings.json + weights/ in its artifacts); "
        "register one with `embsel select ... select.register=NAME`, or give model=<config>",
    )
    return RegisteredModel(
        uri=uri,
        name=name,
        version=str(version.version),
        run_id=version.run_id,
        candidate=(version.tags or {}).get("embsel.candidate"),
        config=logged.config(name=name),
    )


def _model_version(client: MlflowClient, uri: str):
    """(registered name, ModelVersion) of ``models:/NAME@alias`` or ``models:/NAME/VERSION``."""
    if not uri.startswith("models:/") or len(uri) <= len("models:/"):
        raise ModelError(
            f"model_uri={uri!r}: give a registered model as models:/NAME@alias or models:/NAME/VERSION"
        )
    path = uri.removeprefix("models:/").strip("/")
    try:
        if "@" in path:
            name, alias = path.split("@", 1)
            return name, client.get_model_version_by_alias(name, alias)
        name, _, version = path.partition("/")
        if not version:
            raise ModelError(f"model_uri={uri!r}: name an alias or a version (models:/{name}@champion)")
        return name, client.get_model_version(name, version)
    except ModelError:
        raise
    except Exception as exc:  # RESOURCE_DOES_NOT_EXIST and the like
        raise ModelError(
            f"cannot load the reference model {uri}: {first_line(exc)}; check the name and alias "
            "(`embsel select ... select.register=NAME` registers one as @champion)"
        ) from exc
