"""What each step imports, and what that costs: ``python -X importtime`` of one run per step.

    python benchmarks/bench_imports.py             # demo data, offline (about 2 minutes on 2 cores)

Each command runs once in a fresh interpreter with ``-X importtime`` (in one temporary store and
embedding cache, in this order, so "warm" runs find the embeddings the run before them cached).
Per run it prints the wall time, the seconds spent importing (the sum of the top-level imports'
cumulative times; ``-X importtime`` itself adds about 10 %), and the cumulative import time of
each heavy package the run imported. A package a step does not use should not be in its row:
a warm evaluate imports no torch, sentence-transformers, scikit-learn or scipy.stats; a select of
LSA and BM25 candidates no sentence-transformers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "mlflow",
    "torch",
    "transformers",
    "sentence_transformers",
    "sklearn",
    "scipy.stats",
    "datasets",
    "matplotlib",
    "ray",
)
# (label, arguments): the steps on the bundled demo data; the evaluate pair shows cold vs warm.
RUNS: list[tuple[str, list[str]]] = [
    ("profile", ["profile", "data=demo_sts"]),
    ("evaluate (cold)", ["evaluate"]),
    ("evaluate (warm)", ["evaluate"]),
    ("select lsa+bm25 (cold)", ["select", "candidates=[lsa,bm25]", "datasets=[demo_sts,demo_retrieval]"]),
    ("select lsa+bm25 (warm)", ["select", "candidates=[lsa,bm25]", "datasets=[demo_sts,demo_retrieval]"]),
    ("monitor (warm model)", ["monitor", "model=minilm", "data=demo_sts", "windows=[demo_sts]"]),
]


def run(workdir: Path, args: list[str]) -> tuple[float, str]:
    """Wall seconds and the ``-X importtime`` stderr of ``embsel <args>`` in a fresh interpreter."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "EMBSEL_CACHE_DIR": str(workdir / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, "-X", "importtime", "-m", "embsel_mlflow", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):  # 3: monitor's alert exit code
        sys.exit(f"`embsel {' '.join(args)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stderr


def import_seconds(stderr: str) -> tuple[float, dict[str, float]]:
    """Seconds in top-level imports, and the cumulative seconds of each heavy package imported."""
    total, heavy = 0.0, {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        seconds = int(cumulative) / 1e6
        if len(name) - len(name.lstrip()) == 1:  # imported by the program itself, not by a module
            total += seconds
        if name.strip() in HEAVY and seconds > 0.001:  # a blocked import is listed at 0 s
            heavy[name.strip()] = heavy.get(name.strip(), 0.0) + seconds
    return total, heavy


def main() -> None:
    print(__doc__.splitlines()[0])
    print(f"{'run':<26} {'wall':>7} {'imports':>8}  heavy packages imported (cumulative s)")
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as name:
        workdir = Path(name)
        for label, args in RUNS:
            wall, stderr = run(workdir, args)
            total, heavy = import_seconds(stderr)
            listed = ", ".join(f"{package} {seconds:.2f}" for package, seconds in sorted(heavy.items()))
            print(f"{label:<26} {wall:>6.2f}s {total:>7.2f}s  {listed or 'none'}")


if __name__ == "__main__":
    main()
