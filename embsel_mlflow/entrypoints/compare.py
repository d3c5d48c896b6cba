"""``embsel compare``: a table of runs, side by side, from any tracking store.

Built on ``mlflow.search_runs``, so it works against sqlite, a file store or a tracking server:

    embsel compare --parent <sweep parent run id>                   # the jobs of a sweep
    embsel compare --experiment embsel --filter "tags.embsel.task = 'sts'" --metrics test/cosine_spearman
    embsel compare --runs <id> <id> --params model.name data.name --sort main_score --format markdown
"""

from __future__ import annotations

import argparse
import sys

from embsel_mlflow.jobs.command import add_tracking_uri, command_parser, run_command
from embsel_mlflow.tracking.compare import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embsel compare",
        "Print a table of MLflow runs: one row per run, the metrics and params you choose.",
        __doc__,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--experiment", action="append", metavar="NAME", help="experiment(s) to list")
    source.add_argument("--parent", metavar="RUN_ID", help="the child runs of this run (e.g. a sweep)")
    source.add_argument("--runs", nargs="+", metavar="RUN_ID", help="these runs")
    parser.add_argument(
        "--filter", default="", metavar="EXPR", help="MLflow filter, e.g. \"params.data.name = 'stsb'\""
    )
    parser.add_argument("--metrics", nargs="*", default=["main_score"], metavar="KEY", help="metric columns")
    parser.add_argument("--params", nargs="*", default=[], metavar="KEY", help="param columns")
    parser.add_argument("--tags", nargs="*", default=[], metavar="KEY", help="tag columns")
    parser.add_argument("--sort", metavar="COLUMN", help="sort by this column (default: the first metric)")
    parser.add_argument("--ascending", action="store_true", help="sort ascending (default: descending)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write the table to FILE instead of stdout")
    add_tracking_uri(parser)
    parser.add_argument("--max-results", type=int, default=10_000, metavar="N")
    return parser


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, _compare)


def _compare(args: argparse.Namespace) -> int:
    from embsel_mlflow.tracking.compare import render, runs_table, search, write_output

    table = runs_table(search(args), args)
    text = render(table, args.format)
    if args.output:
        write_output(args.output, text)
        print(f"{len(table)} runs written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0
