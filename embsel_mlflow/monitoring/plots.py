"""Monitoring figures (matplotlib object API, no pyplot state): the 2-D projection and the time series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embsel_mlflow.monitoring.sampling import fit_pca, subsample_indices

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def projection_figure(
    reference: np.ndarray, windows: list[tuple[str, np.ndarray]], *, points: int = 2000, seed: int = 0
) -> Figure:
    """Reference (grey) and each window (a colour) on the reference's first two principal components.

    UMAP is used instead when ``umap-learn`` is installed (fitted on the reference too).
    """
    from matplotlib.figure import Figure

    ref = reference[subsample_indices(len(reference), points, seed)]
    project, method = _projector(ref, seed)
    figure = Figure(figsize=(7, 6))
    ax = figure.add_subplot()
    shown = project(ref)
    ax.scatter(shown[:, 0], shown[:, 1], s=4, alpha=0.3, color="grey", label=f"reference ({len(reference)})")
    for i, (name, current) in enumerate(windows):
        cur = current[subsample_indices(len(current), points, seed + 1 + i)]
        shown = project(cur)
        ax.scatter(shown[:, 0], shown[:, 1], s=4, alpha=0.5, label=f"{name} ({len(current)})")
    ax.set_title(f"reference vs current windows ({method}, fitted on the reference)")
    ax.legend(fontsize=8, markerscale=3)
    figure.tight_layout()
    return figure


def _projector(reference: np.ndarray, seed: int):
    try:
        import umap  # optional: pip install umap-learn
    except ImportError:
        projection = fit_pca(reference, 2)
        return projection.transform, "PCA"
    reducer = umap.UMAP(n_components=2, random_state=seed).fit(reference)
    return reducer.transform, "UMAP"


@dataclass
class Series:
    """One line of the time-series plot: values by window step."""

    label: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def timeseries_figure(
    p_values: list[Series],
    alpha: float,
    quality: Series | None = None,
    quality_band: tuple[float, float] | None = None,
) -> Figure:
    """p-values per method (log scale, the alert band below alpha shaded) and, when known, the
    quality score with its baseline - tolerance band."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = 2 if quality is not None and quality.steps else 1
    figure = Figure(figsize=(8, 3.2 * rows))
    ax = figure.add_subplot(rows, 1, 1)
    for series in p_values:
        ax.plot(series.steps, np.maximum(series.values, 1e-6), marker="o", label=series.label)
    ax.set_yscale("log")
    ax.axhspan(1e-6, alpha, color="red", alpha=0.12, label=f"drift: p < {alpha:g}")
    ax.axhline(alpha, color="red", linestyle="--", linewidth=1)
    ax.set_ylabel("p-value (no drift)")
    ax.set_xlabel("window")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, ncol=3)
    if rows == 2 and quality is not None:
        qx = figure.add_subplot(rows, 1, 2)
        qx.plot(quality.steps, quality.values, marker="o", color="black", label=quality.label)
        if quality_band is not None:
            low, baseline = quality_band
            qx.axhline(baseline, color="green", linestyle="--", linewidth=1, label="baseline")
            qx.axhspan(low, baseline, color="green", alpha=0.12, label="tolerance")
            qx.axhline(low, color="red", linestyle="--", linewidth=1, label="alert below")
        qx.set_ylabel(quality.label)
        qx.set_xlabel("window")
        qx.xaxis.set_major_locator(MaxNLocator(integer=True))
        qx.legend(fontsize=7)
    figure.tight_layout()
    return figure
