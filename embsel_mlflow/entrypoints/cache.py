"""``embsel cache info|clear``: look at or empty the on-disk embedding cache."""

from __future__ import annotations

import argparse
import sys

from embsel_mlflow.config import CacheConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.jobs.command import command_parser, run_command


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "embsel cache",
        "Manage the embedding cache shared by every run (default: $EMBSEL_CACHE_DIR, "
        "else the user cache dir, e.g. ~/.cache/embsel).",
    )
    parser.add_argument(
        "action", choices=["info", "clear"], help="info: size and contents; clear: delete all"
    )
    parser.add_argument("--dir", default=None, help="the cache directory (what cache.dir=... sets in a step)")
    parser.add_argument(
        "--max-size-gb", type=float, default=CacheConfig.max_size_gb, help="size limit shown by info"
    )
    return parser


def main(args: list[str]) -> int:
    return run_command(_parser(), args, _cache)


def _cache(options: argparse.Namespace) -> int:
    from embsel_mlflow.models.cache import EmbeddingCache, cache_dir

    root = cache_dir(CacheConfig(dir=options.dir))
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--dir {root} is a file, not a cache directory; give the directory (cache.dir)")
    cache = EmbeddingCache(root, max_size_bytes=int(options.max_size_gb * 1024**3))
    if options.action == "info":
        print("\n".join(cache.info().lines()))
        return 0
    before = cache.info()
    cache.clear()
    print(f"cleared {before.embeddings} embeddings ({before.size_bytes / 1024**2:.1f} MiB) from {root}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
