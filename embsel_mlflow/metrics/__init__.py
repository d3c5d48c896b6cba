"""Metrics as HF ``evaluate`` modules, shipped in the package and loaded by path."""

from embsel_mlflow.metrics.loading import BUILTIN_METRICS, builtin_metric_path, load_metric

__all__ = ["BUILTIN_METRICS", "builtin_metric_path", "load_metric"]
