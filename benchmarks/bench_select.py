"""`embsel select` speed: (a) a second identical selection vs the first (embedding cache), and
(b) one cold selection vs the sum of the separate cold `embsel evaluate` runs of the same pairs.

    python benchmarks/bench_select.py          # minilm, static_minilm, lsa on the bundled demo data
    python benchmarks/bench_select.py --candidates minilm,lsa --datasets stsb,scifact

Every run is a real CLI process (`python -m embsel_mlflow ...`) against its own sqlite store;
"cold" means a fresh, empty embedding cache directory. Bars: (a) >= 10x faster with identical
quality metrics; (b) <= 1.1x the sum of the evaluate runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_BAR = 10.0
OVERHEAD_BAR = 1.1


def run(args: list[str], cwd: Path, cache_dir: Path) -> float:
    """Wall seconds of ``python -m embsel_mlflow <args>`` in ``cwd`` with its own cache dir."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "EMBSEL_CACHE_DIR": str(cache_dir),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "embsel_mlflow", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`embsel {' '.join(args)}` failed:\n{proc.stderr[-3000:]}")
    return seconds


def latest_children(cwd: Path) -> list:
    """The child runs of the latest selection in ``cwd``'s store."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, order_by=["start_time DESC"])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def quality(children: list) -> dict[str, dict[str, float]]:
    """Pair name -> quality metrics (test/*, main_score)."""

    def is_quality(key: str) -> bool:
        return key.startswith("test/") or key == "main_score"

    return {r.info.run_name: {k: v for k, v in r.data.metrics.items() if is_quality(k)} for r in children}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="minilm,static_minilm,lsa")
    parser.add_argument("--datasets", default="demo_sts,demo_retrieval")
    parser.add_argument("--skip-overhead", action="store_true", help="only measure (a), the cache ratio")
    args = parser.parse_args()
    candidates, datasets = args.candidates.split(","), args.datasets.split(",")
    common = ["evaluation.show_progress=false"]
    select_args = [
        "select",
        f"candidates=[{','.join(candidates)}]",
        f"datasets=[{','.join(datasets)}]",
        *common,
    ]

    with tempfile.TemporaryDirectory(prefix="bench-select-") as tmp:
        root = Path(tmp)
        work, cache = root / "select", root / "cache"
        work.mkdir()
        first = run(select_args, work, cache)
        quality_first = quality(latest_children(work))
        second = run(select_args, work, cache)
        children = latest_children(work)
        identical = quality_first == quality(children)
        hits = sum(r.data.metrics.get("cache_hits", 0.0) for r in children)
        ratio = first / second
        print(f"candidates={candidates} datasets={datasets}")
        print(
            f"(a) cache: first {first:.1f} s, second {second:.1f} s -> {ratio:.1f}x faster "
            f"(bar >= {CACHE_BAR:g}x: {'PASS' if ratio >= CACHE_BAR and identical else 'FAIL'}); "
            f"quality metrics identical: {identical}; cache hits in the second: {hits:.0f} texts"
        )
        if args.skip_overhead:
            return
        separate, pairs = 0.0, 0
        for index, (model, data) in enumerate((m, d) for m in candidates for d in datasets):
            if model == "bm25" and data not in ("scifact", "demo_retrieval"):
                continue  # not applicable: the selection skips it too
            pair_dir = root / f"evaluate-{index}"
            pair_dir.mkdir()
            evaluate_args = ["evaluate", f"model={model}", f"data={data}", *common]
            separate += run(evaluate_args, pair_dir, pair_dir / "cache")
            pairs += 1
        overhead = first / separate
        print(
            f"(b) overhead: one cold selection {first:.1f} s vs {pairs} cold evaluate runs {separate:.1f} s "
            f"-> {overhead:.2f}x (bar <= {OVERHEAD_BAR:g}x: "
            f"{'PASS' if overhead <= OVERHEAD_BAR else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
