"""``embsel demo-data digits|spoken [DIR]``: write an offline image or audio demo set.

Deterministic (the same files on every run), written where the conf/data examples expect them:

    embsel demo-data digits            # ./digits: 1,797 real 8x8 digit scans, train/test/windows
    embsel demo-data spoken speech/    # ./speech: 6 espeak-ng voices, 16 kHz WAV (needs espeak-ng)
    embsel profile data=digits data.root=digits   # then use it: data.root is where it was written
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.jobs.command import command_parser, run_command

SETS = ("digits", "spoken")


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embsel demo-data", "Write an offline demo set of images or sound, with its CSVs.", __doc__
    )
    parser.add_argument("set", choices=SETS, help="digits: images (scikit-learn); spoken: speech (espeak-ng)")
    parser.add_argument("dir", nargs="?", default=None, help="where to write it (default: ./<set>)")
    return parser


def main(args: list[str]) -> int:
    return run_command(_parser(), args, _write)


def _write(options: argparse.Namespace) -> int:
    from embsel_mlflow.media.demo import write_digits, write_spoken

    target = Path(options.dir or options.set)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a directory: give a new or existing directory")
    try:
        written = (write_digits if options.set == "digits" else write_spoken)(target)
    except OSError as err:  # a read-only or full disk: one line, not a traceback
        raise DataError(
            f"cannot write the {options.set} demo set to {target}: {err}; choose another DIR"
        ) from None
    for name, rows in written.items():
        print(f"{target / name}: {rows} rows")
    print(f"wrote the {options.set} demo set to {target}; point data.root at it (data.root={target})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
