"""Data layer: read tables (local files or hub datasets), validate values, generic task data types.

The task families (``embsel_mlflow.families``) build their examples from these tables.
"""

from embsel_mlflow.config.paths import demo_data_dir
from embsel_mlflow.data.loader import load_table
from embsel_mlflow.data.task_data import DataWarning, Family, TableInfo, TaskData

__all__ = ["DataWarning", "Family", "TableInfo", "TaskData", "demo_data_dir", "load_table"]
