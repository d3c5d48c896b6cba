"""What differs between a run and its replay: metrics, config, versions, code, data, model.

A replay reproduces its original when every quality metric is within the tolerance, every data
table has the same digest and the model weights are the same; config, package and git
differences are reported so a user can see why numbers moved, but do not by themselves fail it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embsel_mlflow.tracking.params import flatten

if TYPE_CHECKING:
    from mlflow.entities import Run

# Metrics of the machine and the embedding cache (time, speed, memory, cache hits): they change
# from run to run and say nothing about whether the result reproduces.
MACHINE_METRIC = re.compile(r"(seconds|per_second|_ms|_mb)$|(^|/)cache_(hits|misses)$")
# Config keys that a replay changes on purpose (where it logs, its tags).
REPLAY_KEYS = re.compile(r"^tracking\.")
MODEL_TAGS = ("embsel.model_sha256",)
MISSING = "(missing)"


@dataclass
class Change:
    key: str
    original: Any
    rerun: Any

    def line(self) -> str:
        return f"  {self.key}: {self.original} -> {self.rerun}"


@dataclass
class MetricChange(Change):
    within_tolerance: bool = True

    def line(self) -> str:
        mark = "ok" if self.within_tolerance else "DIFFERS"
        return f"  {self.key}: {_number(self.original)} -> {_number(self.rerun)}  [{mark}]"


@dataclass
class RunDiff:
    original_id: str
    rerun_id: str
    tolerance: float
    metrics: list[MetricChange] = field(default_factory=list)
    digests: list[Change] = field(default_factory=list)
    model: list[Change] = field(default_factory=list)
    config: list[Change] = field(default_factory=list)
    versions: list[Change] = field(default_factory=list)
    git: list[Change] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """One line per reason the replay does not reproduce the original."""
        lines = [f"data digest of {d.key} changed ({d.original} -> {d.rerun})" for d in self.digests]
        lines += [f"model {m.key} changed ({m.original} -> {m.rerun})" for m in self.model]
        differing = [m.key for m in self.metrics if not m.within_tolerance]
        if differing:
            lines.append(f"{len(differing)} metrics differ beyond {self.tolerance:g}: {', '.join(differing)}")
        return lines

    @property
    def reproduced(self) -> bool:
        return not self.failures

    def report(self) -> str:
        compared = len(self.metrics)
        differing = sum(not m.within_tolerance for m in self.metrics)
        lines = [f"rerun {self.rerun_id} of {self.original_id}:"]
        lines.append(f"metrics ({compared} compared, tolerance {self.tolerance:g}, {differing} differ):")
        lines += [m.line() for m in self.metrics]
        for title, changes in (
            ("data digests", self.digests),
            ("model", self.model),
            ("resolved config", self.config),
            ("package versions", self.versions),
            ("git", self.git),
        ):
            lines.append(f"{title}: " + ("same" if not changes else f"{len(changes)} changed"))
            lines += [c.line() for c in changes]
        verdict = "reproduced" if self.reproduced else "NOT reproduced: " + "; ".join(self.failures)
        lines.append(verdict)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        def rows(changes: list[Change]) -> list[dict[str, Any]]:
            return [vars(c).copy() for c in changes]

        return {
            "original_run_id": self.original_id,
            "rerun_run_id": self.rerun_id,
            "tolerance": self.tolerance,
            "reproduced": self.reproduced,
            "failures": self.failures,
            **{
                name: rows(getattr(self, name))
                for name in ("metrics", "digests", "model", "config", "versions", "git")
            },
        }


def diff_runs(
    original: Run, rerun: Run, original_config: dict[str, Any], rerun_config: dict[str, Any], tolerance: float
) -> RunDiff:
    diff = RunDiff(original.info.run_id, rerun.info.run_id, tolerance)
    diff.metrics = _metric_changes(original.data.metrics, rerun.data.metrics, tolerance)
    diff.digests = _changes(_digests(original), _digests(rerun))
    diff.model = _changes(_pick(original.data.tags, MODEL_TAGS), _pick(rerun.data.tags, MODEL_TAGS))
    config_a, config_b = (
        {k: v for k, v in flatten(c).items() if not REPLAY_KEYS.match(k)}
        for c in (original_config, rerun_config)
    )
    diff.config = _changes(config_a, config_b)
    diff.versions = _changes(
        _prefixed(original.data.tags, "versions."), _prefixed(rerun.data.tags, "versions.")
    )
    diff.git = _changes(
        _prefixed(original.data.tags, "embsel.git_"), _prefixed(rerun.data.tags, "embsel.git_")
    )
    return diff


def _metric_changes(a: dict[str, float], b: dict[str, float], tolerance: float) -> list[MetricChange]:
    changes = []
    for key in sorted(set(a) | set(b)):
        if MACHINE_METRIC.search(key):
            continue
        x, y = a.get(key), b.get(key)
        same = (
            x is not None and y is not None and (x == y or math.isclose(x, y, rel_tol=0, abs_tol=tolerance))
        )
        changes.append(MetricChange(key, MISSING if x is None else x, MISSING if y is None else y, same))
    return changes


def _digests(run: Run) -> dict[str, str]:
    inputs = run.inputs.dataset_inputs if run.inputs is not None else []
    return {d.dataset.name: d.dataset.digest for d in inputs}


def _pick(tags: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: tags[k] for k in keys if k in tags}


def _prefixed(tags: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    return [
        Change(key, a.get(key, MISSING), b.get(key, MISSING))
        for key in sorted(set(a) | set(b))
        if a.get(key, MISSING) != b.get(key, MISSING)
    ]


def _number(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)
