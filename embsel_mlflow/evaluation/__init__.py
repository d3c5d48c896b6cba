"""Generic evaluation machinery: the EvalTask base, results, search and similarity.

The evaluation task of each task family lives with its family (``embsel_mlflow.families``).
"""

from embsel_mlflow.evaluation.base import EvalTask, TaskResult, TextEncoder

__all__ = ["EvalTask", "TaskResult", "TextEncoder"]
