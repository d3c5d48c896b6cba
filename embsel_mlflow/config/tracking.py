"""``conf/tracking/``: where runs are tracked (``tracking/``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working dir
    experiment: str = "embsel"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_datasets: bool = True
    log_per_item: bool = True
