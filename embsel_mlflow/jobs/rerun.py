"""``embsel rerun``'s library: replay a logged run from its recorded config and diff it against the original.

The replay composes the run's step from its recorded overrides (``overrides.yaml``), pins the
recorded seed and model revision, appends the caller's overrides, and logs a new run tagged
``rerun_of=<RUN_ID>`` in the original's experiment (``plan_rerun``); the step runs as ``embsel
<step>`` does (``jobs.steps.run_step``); ``diff_replay`` then compares the two runs (metrics with
a tolerance, data digests, model weights, resolved config, package versions, git commit) and
logs the diff in the replay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from embsel_mlflow.tracking.run_diff import RunDiff

RERUN_TAG = "rerun_of"  # set through tracking.tags, so the replayed step logs it itself
# Recorded values pinned on the replay, when the original's config has them.
PINNED_KEYS = ("evaluation.seed", "model.revision")


@dataclass
class Replay:
    """What ``embsel rerun`` replays: the original run, its step and the overrides of the replay."""

    client: MlflowClient
    original: Run
    step: str
    config: dict[str, Any]  # the original's resolved config (config.yaml)
    overrides: list[str]
    warnings: list[str] = field(default_factory=list)  # masked secrets to pass again
    started_ms: int = 0


def _artifact_yaml(client: MlflowClient, run_id: str, path: str) -> Any:
    import yaml
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(run_id, path)
    except (MlflowException, OSError) as exc:
        raise ConfigError(f"run {run_id} has no {path} artifact, so it cannot be replayed") from exc
    return yaml.safe_load(Path(local).read_text(encoding="utf-8"))


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def replay_overrides(
    recorded: list[str],
    config: dict[str, Any],
    *,
    uri: str,
    experiment: str,
    run_id: str,
    extra: list[str],
    warnings: list[str] | None = None,
) -> list[str]:
    """The recorded overrides minus where-to-log and masked secrets, the pins, the target store, ``extra``.

    A masked secret cannot be replayed: its warning line goes to ``warnings``.
    """
    from embsel_mlflow.sweeps.overrides import override_key
    from embsel_mlflow.tracking.params import MASK

    kept = []
    for override in recorded:
        key = override_key(override)
        if key.startswith("tracking.") or override.startswith("hydra"):
            continue  # the replay logs where this command says, with its own tags
        if override.endswith(f"={MASK}"):
            if warnings is not None:
                warnings.append(
                    f"warning: {key} was masked in the record; pass it again: embsel rerun {run_id} {key}=..."
                )
            continue
        kept.append(override)
    pins = [f"{key}={_lookup(config, key)}" for key in PINNED_KEYS if _lookup(config, key) is not None]
    target = [
        f"tracking.uri='{uri}'",
        f"tracking.experiment='{experiment}'",
        f"++tracking.tags.{RERUN_TAG}={run_id}",
    ]
    return [*kept, *pins, *target, *extra]


def plan_rerun(run_id: str, extra: list[str], tracking_uri: str | None) -> Replay:
    """The replay of ``run_id`` (refused in one line: an unknown run, a sweep parent, a non-embsel run)."""
    from mlflow.exceptions import MlflowException

    from embsel_mlflow.jobs.steps import STEPS
    from embsel_mlflow.sweeps.jobs import ROLE_TAG
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = open_store(uri, must_exist=True)
    try:
        original = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"no run {run_id} in {uri}; check the id or pass --tracking-uri") from exc
    step = original.data.tags.get("embsel.entry_point", "")
    experiment = client.get_experiment(original.info.experiment_id)
    # a deleted experiment marks its runs deleted too: name the experiment then, it is what to restore
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(
            f"experiment '{experiment.name}' of run {run_id} is deleted; restore it (`mlflow experiments "
            f"restore --experiment-id {experiment.experiment_id}`) before replaying the run"
        )
    if original.info.lifecycle_stage == "deleted":
        raise ConfigError(
            f"run {run_id} is deleted; restore it (`mlflow runs restore --run-id {run_id}`) "
            "before replaying it"
        )
    if original.data.tags.get(ROLE_TAG) == "parent":
        raise ConfigError(
            f"run {run_id} is a sweep parent; rerun one of its children (embsel compare --parent)"
        )
    if step not in STEPS:
        raise ConfigError(f"run {run_id} was not logged by an embsel step (entry point {step!r})")
    recorded = _artifact_yaml(client, run_id, "overrides.yaml").get("overrides", [])
    config = _artifact_yaml(client, run_id, "config.yaml")
    warnings: list[str] = []
    overrides = replay_overrides(
        recorded, config, uri=uri, experiment=experiment.name, run_id=run_id, extra=extra, warnings=warnings
    )
    return Replay(client, original, step, config, overrides, warnings)


def run_replay(replay: Replay) -> int:
    """Run the replay's step as ``embsel <step> <overrides>`` does; its exit code."""
    from embsel_mlflow.jobs.steps import run_step

    replay.started_ms = int(time.time() * 1000) - 1
    return run_step(replay.step, replay.overrides)


def diff_replay(replay: Replay, tolerance: float) -> RunDiff | None:
    """The replayed run against the original, logged in the replay (``rerun/diff.json``, the
    ``embsel.rerun.reproduced`` tag); None when no replayed run finished."""
    from embsel_mlflow.tracking.run_diff import diff_runs
    from embsel_mlflow.tracking.run_logger import RunLogger

    client, original = replay.client, replay.original
    runs = client.search_runs(
        [original.info.experiment_id],
        filter_string=(
            f"tags.{RERUN_TAG} = '{original.info.run_id}' and attributes.start_time >= {replay.started_ms}"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    replayed = runs[0]
    replayed_config = _artifact_yaml(client, replayed.info.run_id, "config.yaml")
    diff = diff_runs(original, replayed, replay.config, replayed_config, tolerance)
    run = RunLogger(client, replayed.info.run_id)
    run.log_dict(diff.as_dict(), "rerun/diff.json")
    run.set_tags({"embsel.rerun.reproduced": str(diff.reproduced).lower()})
    return diff
