"""A registered embedding model (``models:/NAME@alias`` or ``models:/NAME/3``) as a model config.

The registered pyfunc holds the model's own directory (``weights``: a sentence-transformers or
model2vec folder) and ``settings.json`` (prompts, normalisation, batch size). Monitoring loads
that directory through the normal model path (``build_encoder``), so its embeddings go through
the embedding cache and equal the ones the champion was selected with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import ModelConfig, ModelKind, StaticConfig
from embsel_mlflow.errors import ModelError

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
        raise ModelError(f"cannot download the reference model {uri}: {_first_line(exc)}") from exc
    settings_files = sorted(local.rglob("settings.json"))
    if not settings_files or not (settings_files[0].parent / "weights").is_dir():
        raise ModelError(
            f"{uri} is not an embsel embedding model (no settings.json + weights/ in its artifacts); "
            "register one with `embsel select ... select.register=NAME`, or give model=<config>"
        )
    settings = json.loads(settings_files[0].read_text(encoding="utf-8"))
    weights = settings_files[0].parent / "weights"
    prompts = settings.get("prompts") or {}
    static = settings.get("backend") == "model2vec"
    config = ModelConfig(
        name=str(settings.get("name") or name),
        name_or_path=str(weights),
        kind=ModelKind.static if static else ModelKind.sentence_transformers,
        normalize=bool(settings.get("normalize", False)),
        symmetric_prompt=prompts.get("symmetric"),
        query_prompt=prompts.get("query"),
        document_prompt=prompts.get("document"),
        batch_size=int(settings.get("batch_size", 32)),
        # a static model keeps its own length limit; an ST directory carries its max_seq_length
        max_seq_length=int(settings["max_length"]) if static and settings.get("max_length") else None,
        static=StaticConfig(distill=False, pca_dims=None) if static else None,
    )
    return RegisteredModel(
        uri=uri,
        name=name,
        version=str(version.version),
        run_id=version.run_id,
        candidate=(version.tags or {}).get("embsel.candidate"),
        config=config,
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
            f"cannot load the reference model {uri}: {_first_line(exc)}; check the name and alias "
            "(`embsel select ... select.register=NAME` registers one as @champion)"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
