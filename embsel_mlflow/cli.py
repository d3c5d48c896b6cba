"""The ``embsel`` command: ``embsel <step> [hydra overrides]``.

Each step is a real Hydra app (``-m``, ``--cfg job``, ``--help`` work). This module imports
nothing heavy so that ``embsel --help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys

from embsel_mlflow import __version__

# step -> the module with its ``main(args) -> int`` (descriptions: embsel_mlflow/config/steps.py)
COMMANDS: dict[str, str] = {
    "evaluate": "embsel_mlflow.entrypoints.evaluate",
    "runs": "embsel_mlflow.entrypoints.runs",
    "select": "embsel_mlflow.entrypoints.select",
    "train": "embsel_mlflow.entrypoints.train",
    "profile": "embsel_mlflow.entrypoints.profile",
    "monitor": "embsel_mlflow.entrypoints.monitor",
    "embed": "embsel_mlflow.entrypoints.embed",
    "cache": "embsel_mlflow.entrypoints.cache",
    "compare": "embsel_mlflow.entrypoints.compare",
    "rerun": "embsel_mlflow.entrypoints.rerun",
    "demo-data": "embsel_mlflow.entrypoints.demo_data",
}

USAGE = """usage: embsel <command> [hydra overrides ...]

Choose, fine-tune, evaluate and monitor embedding models; every step is an MLflow run.

commands:
{commands}

options:
  -h, --help     show this message (``embsel <command> --help`` shows the command's config)
  --version      print the version

examples:
  embsel evaluate                                   # offline demo: MiniLM on a bundled STS set
  embsel evaluate model=minilm data=stsb            # STS-B test, MTEB protocol
  embsel evaluate -m data=demo_sts,demo_retrieval   # Hydra multirun: a parent run, a child per job
  embsel evaluate --cfg job                         # print the composed config
  embsel select candidates=[minilm,e5_base] datasets=[stsb]  # choose a model, with evidence
  embsel profile data=scifact candidates=[minilm,lsa]  # understand the data first
  embsel monitor model_uri=models:/my_embedder@champion data=banking77 current.dir=windows/
  mlflow ui --backend-store-uri sqlite:///mlflow.db # browse the runs
"""


def usage() -> str:
    from embsel_mlflow.config.steps import step_summary

    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {step_summary(name)}" for name in COMMANDS]
    return USAGE.format(commands="\n".join(lines))


def expand_overrides_option(args: list[str]) -> list[str]:
    """Replace ``--overrides "<string>"`` (used by MLproject) by the overrides it holds."""
    from embsel_mlflow.overrides import split_overrides

    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--overrides":
            if i + 1 >= len(args):
                raise SystemExit(
                    "error: --overrides needs a value, e.g. --overrides 'model=minilm data=stsb'"
                )
            out += split_overrides(args[i + 1])
            i += 2
            continue
        if arg.startswith("--overrides="):
            out += split_overrides(arg.split("=", 1)[1])
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] == "--version":
        print(f"embsel-mlflow {__version__}")
        sys.exit(0)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    from embsel_mlflow.errors import EmbselError

    try:
        rest = expand_overrides_option(rest)
    except EmbselError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: the run it made records why
            from embsel_mlflow.jobs.app import record_unparsed_overrides

            record_unparsed_overrides(command, str(exc))
        sys.exit(2)
    if argv is None:  # this process is the command: its collection policy is ours to set
        _collect_less_often()
    module = importlib.import_module(COMMANDS[command])
    try:
        code = module.main(rest)
    finally:
        if argv is None:  # this process is the command, and it is ending
            _skip_exit_collection()
    sys.exit(code)


# Python's default, a young collection every 700 new container objects, leads to a full collection
# about a dozen times while torch, transformers and mlflow import, each pass longer as the heap
# grows (about 2 s of a 10 s `embsel evaluate`). At 10,000 that is one or two passes; young
# reference cycles are freed a little later (peak memory: benchmarks/bench_memory_scifact.py).
# Going further, as the test session does (100,000 and a freeze after the heavy imports), saved
# 0.4 s of 530 s CPU on SciFact and cost 4 MiB of peak memory (bench_memory_scifact.py --gc).
GC_GENERATION0_THRESHOLD = 10_000


def _collect_less_often() -> None:
    import gc

    gc.set_threshold(GC_GENERATION0_THRESHOLD, *gc.get_threshold()[1:])


def _skip_exit_collection() -> None:
    """Spare the garbage collection Python runs at exit over every object still alive.

    After torch, transformers and mlflow are imported, those passes walk millions of objects:
    about 4.5 s per command on a 2-core machine, with nothing left to free that the OS won't.
    Frozen objects are skipped by the collector; at-exit handlers still run.
    """
    import gc

    gc.freeze()
