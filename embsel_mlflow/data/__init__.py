"""Data layer: read tables (local files or hub datasets) and build validated task datasets."""

from embsel_mlflow.data.demo import demo_data_dir
from embsel_mlflow.data.loader import load_table
from embsel_mlflow.data.task_data import (
    ClassificationExamples,
    ClusteringExamples,
    DataWarning,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    TableInfo,
    TaskData,
)
from embsel_mlflow.data.task_loader import load_task_data

__all__ = [
    "ClassificationExamples",
    "ClusteringExamples",
    "DataWarning",
    "PairClassificationExamples",
    "RetrievalExamples",
    "STSExamples",
    "TableInfo",
    "TaskData",
    "demo_data_dir",
    "load_table",
    "load_task_data",
]
