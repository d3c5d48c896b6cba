"""``embsel runs repair``: close RUNNING runs whose process is gone (SIGKILL, OOM, power cut).

Every embsel run does this for its own host at start-up; the command does it on demand.
"""

from __future__ import annotations

import argparse
import sys

from embsel_mlflow.jobs.command import CommandParser, add_tracking_uri, command_parser, run_command


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embsel runs",
        "Maintain the runs of a tracking store.",
        epilog="example: embsel runs repair --tracking-uri sqlite:///mlflow.db",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="repair", parser_class=CommandParser)
    repair = sub.add_parser(
        "repair",
        help="mark RUNNING runs of this host whose process is gone as KILLED",
        description="Mark RUNNING runs of this host whose process is gone as KILLED, with the reason "
        "in their `error` tag. Runs of other hosts and of live processes are left alone.",
    )
    add_tracking_uri(repair)
    repair.add_argument("--dry-run", action="store_true", help="list the runs, change nothing")
    return parser


def main(args: list[str]) -> int:
    return run_command(_parser(), args, _repair)


def _repair(options: argparse.Namespace) -> int:
    from embsel_mlflow.tracking.run import repair_runs

    orphans, where = repair_runs(options.tracking_uri, dry_run=options.dry_run)
    verb = "would close" if options.dry_run else "closed"
    for orphan in orphans:
        print(f"{verb} KILLED: run {orphan.run_id} '{orphan.run_name}' (process {orphan.pid} is gone)")
    print(f"{len(orphans)} run(s) of {where} left RUNNING by a dead process", file=sys.stderr)
    return 0
