"""Quality vs throughput: the Pareto front, the throughput constraint and the winner.

matplotlib's object API (no pyplot): no global backend or figure state is touched.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from embsel_mlflow.selection.decision import CONSTRAINTS, MEAN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from embsel_mlflow.config import SelectConfig
    from embsel_mlflow.selection.decision import Decision


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the points no other point beats on both throughput and score, by throughput."""
    front = []
    for name, (speed, score) in points.items():
        dominated = any(
            other != name and s >= speed and q >= score and (s > speed or q > score)
            for other, (s, q) in points.items()
        )
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda name: points[name][0])


def quality_throughput_figure(decision: Decision, cfg: SelectConfig) -> Figure | None:
    """Mean main score against throughput (log x; texts/s, images/s or audio s/s) for every candidate
    scored on all datasets."""
    from matplotlib.figure import Figure

    points = {
        name: (decision.costs[name].speed, decision.scores[name][MEAN])
        for name in decision.complete
        if not math.isnan(decision.costs[name].speed)
    }
    units = sorted({decision.costs[name].speed_unit for name in points})
    if not points:
        return None
    figure = Figure(figsize=(7, 5), layout="constrained")
    ax = figure.add_subplot()
    for name, (speed, score) in points.items():
        low, high = decision.intervals[name][MEAN]
        meets = name in decision.eligible
        ax.errorbar(
            speed,
            score,
            yerr=[[score - low], [high - score]],
            fmt="o",
            color="tab:blue" if meets else "tab:gray",
            mfc="tab:blue" if meets else "none",
            capsize=3,
        )
        ax.annotate(name, (speed, score), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = pareto_front(points)
    ax.plot(
        [points[n][0] for n in front],
        [points[n][1] for n in front],
        "--",
        color="tab:orange",
        label="Pareto front",
    )
    if cfg.min_throughput is not None:
        ax.axvline(cfg.min_throughput, color="tab:red", linestyle=":", label="select.min_throughput")
    if decision.winner in points:
        speed, score = points[decision.winner]
        ax.scatter(
            [speed],
            [score],
            marker="*",
            s=300,
            color="gold",
            edgecolor="black",
            zorder=5,
            label=f"winner: {decision.winner}",
        )
    active = [
        f"{key} = {getattr(cfg, key):g}"
        for key in CONSTRAINTS
        if key != "min_throughput" and getattr(cfg, key) is not None
    ]
    if active:  # limits that are not on these axes
        ax.text(
            0.99,
            0.01,
            "constraints:\n" + "\n".join(active),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="tab:red",
        )
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.1)  # room for the labels
    ax.set_xlabel(f"throughput ({' | '.join(units) or 'texts/s'}, log scale)")
    ax.set_ylabel(f"mean main score over {len(decision.datasets)} dataset(s), {cfg.confidence:.0%} CI")
    ax.set_title("quality vs throughput (hollow: excluded by constraints)")
    ax.legend(fontsize=8, loc="lower left")
    return figure
