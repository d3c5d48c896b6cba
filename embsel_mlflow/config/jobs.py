"""The primary configs ``conf/<step>.yaml``: one schema per step (``jobs/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from embsel_mlflow.config.cache import CacheConfig
from embsel_mlflow.config.data import DataConfig, TableConfig
from embsel_mlflow.config.embed import EmbedConfig
from embsel_mlflow.config.evaluation import EvaluationConfig
from embsel_mlflow.config.model import ModelConfig
from embsel_mlflow.config.monitor import MonitorConfig, WindowFilesConfig
from embsel_mlflow.config.profile import ProfileConfig
from embsel_mlflow.config.select import SelectConfig
from embsel_mlflow.config.tracking import TrackingConfig
from embsel_mlflow.config.train import TrainConfig


@dataclass
class JobConfig:
    """What every step's primary config holds: where its runs are tracked, and the profile settings.

    Step schemas subclass it (dataclass fields of a base come first; each has a default, so a
    step's own fields may follow with or without one).
    """

    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # profile: what it measures; evaluate/select: the modality guard's switch
    profile: ProfileConfig = field(default_factory=ProfileConfig)


@dataclass
class ScoringJobConfig(JobConfig):
    """A step that scores models as ``evaluate`` does: the task protocol and the embedding cache."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)


@dataclass
class EvaluateJobConfig(ScoringJobConfig):
    """Primary config of ``embsel evaluate``."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING


@dataclass
class SelectJobConfig(ScoringJobConfig):
    """Primary config of ``embsel select``: candidates x datasets, each pair as evaluate scores it."""

    candidates: dict[str, ModelConfig] = field(default_factory=dict)  # option name -> model config
    datasets: dict[str, DataConfig] = field(default_factory=dict)  # option name -> data config
    select: SelectConfig = field(default_factory=SelectConfig)
    # How select.finetune_top_k trains (conf/train/, as `embsel train`: train/loss=cosent, train.epochs=2)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ProfileJobConfig(JobConfig):
    """Primary config of ``embsel profile``: a dataset (or one raw table) against candidate models."""

    data: DataConfig | None = None  # a task dataset from conf/data (its tables, column mapping)
    # Any table instead of a dataset: `embsel profile table.path=my.csv` (relative to table_root).
    table: TableConfig = field(default_factory=TableConfig)
    table_root: str = "."
    candidates: dict[str, ModelConfig] = field(default_factory=dict)  # option name -> model config


@dataclass
class MonitorJobConfig(ScoringJobConfig):
    """Primary config of ``embsel monitor``: a reference (data + model) against current windows."""

    model: ModelConfig | None = None  # any model config; or model_uri
    model_uri: str | None = None  # a registered model, e.g. models:/my_embedder@champion
    data: DataConfig = MISSING  # the reference dataset
    windows: dict[str, DataConfig] = field(default_factory=dict)  # windows given as data configs, in order
    current: WindowFilesConfig = field(default_factory=WindowFilesConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


@dataclass
class TrainJobConfig(ScoringJobConfig):
    """Primary config of ``embsel train``: fine-tune one model on one dataset's train split."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class EmbedJobConfig(JobConfig):
    """Primary config of ``embsel embed``: a dataset's texts into the embedding cache, on Ray Data."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    cache: CacheConfig = field(default_factory=CacheConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
