"""The plain (argparse, not Hydra) commands: compare, rerun, runs, cache.

One convention for all of them: a usage mistake is one ``error: ...`` line naming the usage and
exit code 2, like every other embsel error, and ``--help`` ends with the command's examples.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from embsel_mlflow.errors import ConfigError, EmbselError

EXIT_BAD_INPUT = 2
TRACKING_URI_HELP = "the tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"


class CommandParser(argparse.ArgumentParser):
    """argparse whose usage mistakes raise a one-line ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        raise ConfigError(f"{message}; usage: {usage}")


def command_parser(
    prog: str, description: str, doc: str | None = None, *, epilog: str | None = None
) -> CommandParser:
    """A parser whose epilog is ``epilog``, else the examples ending the command module's ``doc``."""
    return CommandParser(
        prog=prog,
        description=description,
        epilog=epilog or (doc.split("\n\n", 2)[-1] if doc else None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None, metavar="URI", help=TRACKING_URI_HELP)


def run_command(parser: argparse.ArgumentParser, argv: list[str], body: Callable[[Any], int]) -> int:
    """Parse ``argv`` and run ``body(args)``; bad input (usage or a user error) is one line, exit 2."""
    try:
        return body(parser.parse_args(argv))  # --help prints and exits 0
    except EmbselError as exc:
        from embsel_mlflow.jobs.app import report

        report(str(exc))
        return EXIT_BAD_INPUT
