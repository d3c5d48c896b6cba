"""Embedding models: where they come from (resolve), where they run (device), how they encode."""

from embsel_mlflow.models.device import resolve_device
from embsel_mlflow.models.encoder import Encoder, load_encoder
from embsel_mlflow.models.resolve import ResolvedModel, resolve_model_source

__all__ = ["Encoder", "ResolvedModel", "load_encoder", "resolve_device", "resolve_model_source"]
