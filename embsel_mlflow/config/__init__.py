"""Typed configs (dataclasses), one module per conf group, and their Hydra registration (``store``).

These dataclasses are the single source of truth for what a config may contain: registered in
Hydra's ConfigStore (``config.store``), a misspelled key or a wrong type fails at compose time;
plain dataclasses, so the library can be used from Python without Hydra.
"""

from embsel_mlflow.config.cache import CacheConfig
from embsel_mlflow.config.data import DataConfig, MediaConfig, TableConfig, TaskType
from embsel_mlflow.config.evaluation import EvaluationConfig, MetricSpec
from embsel_mlflow.config.jobs import (
    EvaluateJobConfig,
    JobConfig,
    MonitorJobConfig,
    ProfileJobConfig,
    ScoringJobConfig,
    SelectJobConfig,
    TrainJobConfig,
)
from embsel_mlflow.config.model import (
    ApiConfig,
    Backend,
    Bm25Config,
    CalibrationConfig,
    EmbeddingDtype,
    ImageFeaturesConfig,
    LsaConfig,
    ModelConfig,
    ModelKind,
    OfflineCopyConfig,
    Pooling,
    Precision,
    Quantization,
    StaticConfig,
    VariantConfig,
)
from embsel_mlflow.config.monitor import (
    ClassifierConfig,
    DriftConfig,
    DriftMethodConfig,
    KsConfig,
    MmdConfig,
    MonitorConfig,
    QualityConfig,
    TextSignalsConfig,
    WindowFilesConfig,
)
from embsel_mlflow.config.profile import ProfileConfig
from embsel_mlflow.config.select import EfficiencyConfig, SelectConfig, VariantAxesConfig
from embsel_mlflow.config.tracking import TrackingConfig
from embsel_mlflow.config.train import HardNegativesConfig, LossConfig, TrainConfig

__all__ = [
    "ApiConfig",
    "Backend",
    "Bm25Config",
    "CacheConfig",
    "CalibrationConfig",
    "ClassifierConfig",
    "DataConfig",
    "MediaConfig",
    "DriftConfig",
    "DriftMethodConfig",
    "EfficiencyConfig",
    "EmbeddingDtype",
    "EvaluateJobConfig",
    "EvaluationConfig",
    "HardNegativesConfig",
    "ImageFeaturesConfig",
    "JobConfig",
    "KsConfig",
    "LossConfig",
    "LsaConfig",
    "MetricSpec",
    "MmdConfig",
    "ModelConfig",
    "ModelKind",
    "MonitorConfig",
    "MonitorJobConfig",
    "OfflineCopyConfig",
    "Pooling",
    "Precision",
    "ProfileConfig",
    "ProfileJobConfig",
    "QualityConfig",
    "Quantization",
    "ScoringJobConfig",
    "SelectConfig",
    "SelectJobConfig",
    "StaticConfig",
    "TableConfig",
    "TaskType",
    "TextSignalsConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainJobConfig",
    "VariantAxesConfig",
    "VariantConfig",
    "WindowFilesConfig",
]
