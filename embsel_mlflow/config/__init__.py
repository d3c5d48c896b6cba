"""Typed configs (dataclasses) and their Hydra registration."""

from embsel_mlflow.config.schema import (
    DataConfig,
    EvaluateJobConfig,
    EvaluationConfig,
    MetricSpec,
    ModelConfig,
    ModelKind,
    OfflineCopyConfig,
    Pooling,
    Precision,
    TableConfig,
    TaskType,
    TrackingConfig,
)

__all__ = [
    "DataConfig",
    "EvaluateJobConfig",
    "EvaluationConfig",
    "MetricSpec",
    "ModelConfig",
    "ModelKind",
    "OfflineCopyConfig",
    "Pooling",
    "Precision",
    "TableConfig",
    "TaskType",
    "TrackingConfig",
]
