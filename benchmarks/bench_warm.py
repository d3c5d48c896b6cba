"""Warm runs: the default job and a 4-candidate select, cold vs warm, each in a fresh process.

    python benchmarks/bench_warm.py                      # demo data, offline (a few minutes)
    python benchmarks/bench_warm.py --rounds 5 --select-rounds 2
    python benchmarks/bench_warm.py --full               # the issue's select: stsb + scifact (../shared/data)

(a) ``embsel evaluate`` (the default job: MiniLM on demo_sts) with ``cache.enabled=false`` vs the
same command warm (its embeddings already cached), interleaved round by round so that load on
the machine falls on both alike; prints the median warm/uncached ratio, and whether a warm run
imported any ``sentence_transformers`` module (``python -X importtime``, one extra warm run).
Bar: warm <= 0.4x, and no sentence_transformers module.

(b) ``embsel select candidates=[minilm,static_minilm,lsa,bm25] datasets=[demo_sts,demo_retrieval]``
in a fresh cache dir and store (cold: encodes, distils, fits and times everything), then the
identical command again (warm: embeddings, the distilled model and efficiency measurements
reused); prints the cold/warm ratio. ``--full``: ``candidates=[minilm,minilm_cls,static_minilm,
lsa,bm25] datasets=[stsb,scifact]``. Bar: warm >= 10x faster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EVALUATE_BAR = 0.4
SELECT_BAR = 10.0
DEMO_SELECT = ["candidates=[minilm,static_minilm,lsa,bm25]", "datasets=[demo_sts,demo_retrieval]"]
FULL_SELECT = ["candidates=[minilm,minilm_cls,static_minilm,lsa,bm25]", "datasets=[stsb,scifact]"]


def embsel(workdir: Path, cache: Path, *args: str, importtime: bool = False) -> tuple[float, str]:
    """Wall seconds of ``embsel <args>`` in a fresh interpreter (in ``workdir``: its sqlite store),
    and its stderr (the import times with ``importtime``)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "EMBSEL_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.setdefault("EMBSEL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "embsel_mlflow", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"`embsel {' '.join(args)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stderr


def imported(stderr: str, package: str) -> list[str]:
    """The modules of ``package`` an ``-X importtime`` stderr lists."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    names = [line.rsplit("|", 1)[-1].strip() for line in lines]
    return [name for name in names if name == package or name.startswith(package + ".")]


HEAVY = ("mlflow", "torch", "sentence_transformers", "transformers", "evaluate", "datasets", "sklearn")


def heavy_imports(stderr: str) -> str:
    """Cumulative import seconds of the heavy packages a ``-X importtime`` stderr shows imported."""
    seconds: dict[str, float] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if name.strip() in HEAVY and cumulative.strip().isdigit():
                seconds[name.strip()] = seconds.get(name.strip(), 0.0) + int(cumulative) / 1e6
    return ", ".join(f"{name} {value:.2f} s" for name, value in sorted(seconds.items())) or "none"


def bench_evaluate(tmp: Path, rounds: int) -> bool:
    """(a): the default job uncached vs warm, interleaved; True when it meets the bar."""
    workdir, cache = tmp / "evaluate", tmp / "evaluate-cache"
    workdir.mkdir()
    embsel(workdir, cache, "evaluate")  # primes the cache (and the sha256 memo)
    uncached, warm = [], []
    for _ in range(rounds):
        uncached.append(embsel(workdir, cache, "evaluate", "cache.enabled=false")[0])
        warm.append(embsel(workdir, cache, "evaluate")[0])
    _, stderr = embsel(workdir, cache, "evaluate", importtime=True)
    modules = imported(stderr, "sentence_transformers")
    ratio = statistics.median(w / u for w, u in zip(warm, uncached, strict=True))
    print("(a) embsel evaluate (the default job), fresh process each, interleaved")
    print(f"    cache.enabled=false: median {statistics.median(uncached):.2f} s  {_walls(uncached)}")
    print(f"    warm (all cached):   median {statistics.median(warm):.2f} s  {_walls(warm)}")
    print(f"    warm / uncached: median ratio {ratio:.2f}x (bar <= {EVALUATE_BAR}x)")
    print(f"    sentence_transformers modules imported when warm: {len(modules)}")
    print(f"    heavy imports when warm (-X importtime, cumulative): {heavy_imports(stderr)}")
    return ratio <= EVALUATE_BAR and not modules


def bench_select(tmp: Path, rounds: int, overrides: list[str]) -> bool:
    """(b): select cold (fresh cache and store) then warm, ``rounds`` times; True when it meets the bar."""
    ratios = []
    print(f"(b) embsel select {' '.join(overrides)}")
    for index in range(rounds):
        workdir, cache = tmp / f"select-{index}", tmp / f"select-cache-{index}"
        workdir.mkdir()
        cold, _ = embsel(workdir, cache, "select", *overrides)
        warm, _ = embsel(workdir, cache, "select", *overrides)
        ratios.append(cold / warm)
        print(f"    round {index + 1}: cold {cold:.1f} s, warm {warm:.1f} s: {cold / warm:.1f}x")
    ratio = statistics.median(ratios)
    print(f"    cold / warm: median {ratio:.1f}x (bar >= {SELECT_BAR:.0f}x)")
    return ratio >= SELECT_BAR


def _walls(values: list[float]) -> str:
    return "[" + ", ".join(f"{value:.2f}" for value in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="evaluate rounds (uncached, warm) each")
    parser.add_argument("--select-rounds", type=int, default=1, help="select rounds (cold, warm) each")
    parser.add_argument("--full", action="store_true", help="the issue's select: stsb + scifact")
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--skip-select", action="store_true")
    args = parser.parse_args()
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as name:
        tmp = Path(name)
        if not args.skip_evaluate:
            met &= bench_evaluate(tmp, args.rounds)
        if not args.skip_select:
            met &= bench_select(tmp, args.select_rounds, FULL_SELECT if args.full else DEMO_SELECT)
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
