"""``embsel runs repair``: close RUNNING runs whose process is gone (SIGKILL, OOM, power cut).

Every embsel run does this for its own host at start-up; the command does it on demand.
"""

from __future__ import annotations

import argparse
import socket
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
    return run_command(_parser(), args, lambda opts: _repair(opts.tracking_uri, dry_run=opts.dry_run))


def _repair(tracking_uri: str | None, *, dry_run: bool) -> int:
    from embsel_mlflow.tracking.repair import close_orphaned_runs, find_orphaned_runs
    from embsel_mlflow.tracking.store import display_uri, open_store, resolve_tracking_uri, store_error

    uri = resolve_tracking_uri(tracking_uri)
    client = open_store(uri)
    try:
        orphans = find_orphaned_runs(client) if dry_run else close_orphaned_runs(client)
    except Exception as exc:
        raise store_error(exc, uri) from exc
    verb = "would close" if dry_run else "closed"
    for orphan in orphans:
        print(f"{verb} KILLED: run {orphan.run_id} '{orphan.run_name}' (process {orphan.pid} is gone)")
    where = f"{socket.gethostname()} in {display_uri(uri)}"
    print(f"{len(orphans)} run(s) of {where} left RUNNING by a dead process", file=sys.stderr)
    return 0
