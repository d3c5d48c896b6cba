"""``embsel rerun RUN_ID [overrides]``: replay a logged run and report what differs.

The replay composes the run's step from its recorded overrides (``overrides.yaml``), pins the
recorded seed and model revision, appends your overrides, and logs a new run tagged
``rerun_of=<RUN_ID>`` in the original's experiment. It then compares the two runs: metrics (with a
tolerance), data digests, model weights (sha256), resolved config, package versions and git
commit. Exit 0 when the original is reproduced, 1 when a metric differs beyond the tolerance, a
data digest or the model changed, 2 on bad input.

    embsel rerun 3f2a...                      # does this run reproduce?
    embsel rerun 3f2a... model.batch_size=8   # same run, one change
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.jobs.command import add_tracking_uri, command_parser, run_command

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

EXIT_NOT_REPRODUCED = 1
RERUN_TAG = "rerun_of"  # set through tracking.tags, so the replayed step logs it itself
# Recorded values pinned on the replay, when the original's config has them.
PINNED_KEYS = ("evaluation.seed", "model.revision")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embsel rerun",
        "Replay a logged run from its recorded config and diff it against the original.",
        __doc__,
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied on top of the recorded ones")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-6,
        help="largest absolute metric difference that still counts as equal",
    )
    add_tracking_uri(parser)
    return parser


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
    recorded: list[str], config: dict[str, Any], *, uri: str, experiment: str, run_id: str, extra: list[str]
) -> list[str]:
    """The recorded overrides minus where-to-log and masked secrets, the pins, the target store, ``extra``."""
    from embsel_mlflow.sweeps.overrides import override_key
    from embsel_mlflow.tracking.params import MASK

    kept = []
    for override in recorded:
        key = override_key(override)
        if key.startswith("tracking.") or override.startswith("hydra"):
            continue  # the replay logs where this command says, with its own tags
        if override.endswith(f"={MASK}"):
            print(f"warning: {key} was masked in the record; pass it again: embsel rerun {run_id} {key}=...")
            continue
        kept.append(override)
    pins = [f"{key}={_lookup(config, key)}" for key in PINNED_KEYS if _lookup(config, key) is not None]
    target = [
        f"tracking.uri='{uri}'",
        f"tracking.experiment='{experiment}'",
        f"++tracking.tags.{RERUN_TAG}={run_id}",
    ]
    return [*kept, *pins, *target, *extra]


def _replayed_run(client: MlflowClient, original: Run, started_ms: int) -> Run | None:
    runs = client.search_runs(
        [original.info.experiment_id],
        filter_string=(
            f"tags.{RERUN_TAG} = '{original.info.run_id}' and attributes.start_time >= {started_ms}"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def rerun(args: argparse.Namespace) -> int:
    import importlib

    from mlflow.exceptions import MlflowException

    from embsel_mlflow.cli import COMMANDS
    from embsel_mlflow.sweeps.jobs import ROLE_TAG
    from embsel_mlflow.tracking.run_diff import diff_runs
    from embsel_mlflow.tracking.run_logger import RunLogger
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_store(uri)
    try:
        original = client.get_run(args.run_id)
    except MlflowException as exc:
        raise ConfigError(f"no run {args.run_id} in {uri}; check the id or pass --tracking-uri") from exc
    step = original.data.tags.get("embsel.entry_point", "")
    if original.data.tags.get(ROLE_TAG) == "parent":
        raise ConfigError(
            f"run {args.run_id} is a sweep parent; rerun one of its children (embsel compare --parent)"
        )
    if step not in COMMANDS or step in ("compare", "rerun"):
        raise ConfigError(f"run {args.run_id} was not logged by an embsel step (entry point {step!r})")
    recorded = _artifact_yaml(client, args.run_id, "overrides.yaml").get("overrides", [])
    config = _artifact_yaml(client, args.run_id, "config.yaml")
    experiment = client.get_experiment(original.info.experiment_id).name
    overrides = replay_overrides(
        recorded, config, uri=uri, experiment=experiment, run_id=args.run_id, extra=args.overrides
    )
    print(f"replaying {step} run {args.run_id}: embsel {step} {' '.join(overrides)}")
    started_ms = int(time.time() * 1000) - 1
    code = importlib.import_module(COMMANDS[step][0]).main(overrides)
    replayed = _replayed_run(client, original, started_ms)
    if code != 0 or replayed is None:
        print(f"error: the replay of {args.run_id} did not finish (exit code {code})", file=sys.stderr)
        return code or EXIT_NOT_REPRODUCED
    diff = diff_runs(
        original,
        replayed,
        config,
        _artifact_yaml(client, replayed.info.run_id, "config.yaml"),
        args.tolerance,
    )
    run = RunLogger(client, replayed.info.run_id)
    run.log_dict(diff.as_dict(), "rerun/diff.json")
    run.set_tags({"embsel.rerun.reproduced": str(diff.reproduced).lower()})
    print(diff.report())
    if not diff.reproduced:
        print(f"error: run {args.run_id} did not reproduce: {'; '.join(diff.failures)}", file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    return 0


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, rerun)
