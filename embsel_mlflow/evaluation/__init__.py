"""Evaluation tasks (retrieval, STS, pair classification, classification, clustering)."""

from embsel_mlflow.evaluation.base import EvalTask, TaskResult, TextEncoder
from embsel_mlflow.evaluation.registry import TASKS, build_task

__all__ = ["TASKS", "EvalTask", "TaskResult", "TextEncoder", "build_task"]
