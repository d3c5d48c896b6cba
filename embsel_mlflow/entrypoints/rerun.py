"""``embsel rerun RUN_ID [overrides]``: replay a logged run and report what differs (``jobs.rerun``).

Exit 0 when the original is reproduced, 1 when a metric differs beyond the tolerance, a data
digest or the model changed, 2 on bad input.

    embsel rerun 3f2a...                      # does this run reproduce?
    embsel rerun 3f2a... model.batch_size=8   # same run, one change
"""

from __future__ import annotations

import argparse
import sys

from embsel_mlflow.jobs.command import add_tracking_uri, command_parser, run_command

EXIT_NOT_REPRODUCED = 1


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


def rerun(args: argparse.Namespace) -> int:
    from embsel_mlflow.jobs.rerun import diff_replay, plan_rerun, run_replay

    replay = plan_rerun(args.run_id, args.overrides, args.tracking_uri)
    print("\n".join(replay.warnings), end="\n" if replay.warnings else "")
    print(f"replaying {replay.step} run {args.run_id}: embsel {replay.step} {' '.join(replay.overrides)}")
    code = run_replay(replay)
    if code != 0:
        return code  # the step printed its own one error line
    diff = diff_replay(replay, args.tolerance)
    if diff is None:
        print(f"error: the replay of {args.run_id} logged no finished run", file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    print(diff.report())
    if not diff.reproduced:
        print(f"error: run {args.run_id} did not reproduce: {'; '.join(diff.failures)}", file=sys.stderr)
        return EXIT_NOT_REPRODUCED
    return 0


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, rerun)
