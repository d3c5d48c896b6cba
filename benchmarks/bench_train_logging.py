"""MLflow logging overhead of `embsel train`: training throughput with tracking on vs off, one process.

    python benchmarks/bench_train_logging.py                 # tiny model, 200 steps per round
    python benchmarks/bench_train_logging.py --steps 400 --rounds 5

Builds the tests' tiny sentence-transformer once, then fine-tunes a fresh copy of it with the
same pairs and arguments (logging every step, the worst case) in alternating rounds: tracking
on (our MetricsCallback into a RunLogger on a fresh sqlite store, batched, plus MLflow system
metrics) and tracking off (the same callback into a sink that drops everything, no system
metrics). Prints samples/s per round, each round's on/off ratio and their median. The bar: overhead < 3%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR = 0.03


class DropSink:
    def log_metric_steps(self, entries: list[tuple[str, float, int]]) -> None:
        pass


def _pairs(count: int):
    from embsel_mlflow.training.pairs import PairKind, TrainPairs

    words = ["guitar", "onion", "window", "field", "bicycle", "market", "frog", "card", "protein", "budget"]
    anchors = [f"question {i} about the {words[i % len(words)]} number {i * 7}" for i in range(count)]
    positives = [f"an answer {i} that mentions the {words[i % len(words)]} and {i * 3}" for i in range(count)]
    return TrainPairs(PairKind.positive, {"anchor": anchors, "positive": positives}, "synthetic")


def _round(st_dir: Path, work: Path, steps: int, tracking: bool) -> float:
    """Samples per second of one training of ``steps`` steps (setup excluded)."""
    from mlflow import MlflowClient
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config.schema import TrainConfig
    from embsel_mlflow.tracking.run_logger import RunLogger
    from embsel_mlflow.training.losses import build_loss
    from embsel_mlflow.training.trainer import fine_tune, training_arguments

    cfg = TrainConfig(batch_size=16, max_steps=steps, logging_steps=1, eval_steps=0, save_steps=0)
    model = SentenceTransformer(str(st_dir), device="cpu")
    pairs = _pairs(800)
    args = training_arguments(cfg, work / f"out-{time.monotonic_ns()}", device="cpu", main_metric=None)
    monitor = None
    sink: object = DropSink()
    if tracking:
        uri = f"sqlite:///{work / 'mlflow.db'}"
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("bench") or client.get_experiment(
            client.create_experiment("bench")
        )
        run_id = client.create_run(experiment.experiment_id).info.run_id
        sink = RunLogger(client, run_id)
        monitor = SystemMetricsMonitor(
            run_id, sampling_interval=cfg.system_metrics_interval_s, tracking_uri=uri
        )
        monitor.start()
    started = time.perf_counter()
    fine_tune(model, pairs, build_loss(model, cfg.loss, pairs), args, cfg, evaluator=None, sink=sink)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if monitor is not None:
        monitor.finish()
    return steps * cfg.batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO_ROOT))
    import logging

    logging.getLogger("embsel.train").setLevel(logging.WARNING)  # no step lines in the timing
    from tests.tiny_models import build_tiny_sentence_transformer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        st_dir = build_tiny_sentence_transformer(work / "tiny_st")
        _round(st_dir, work, 20, tracking=True)  # warm-up: imports, the sqlite store, allocator
        on, off = [], []
        for _ in range(args.rounds):  # alternating, so load on a shared machine hits both alike
            off.append(_round(st_dir, work, args.steps, tracking=False))
            on.append(_round(st_dir, work, args.steps, tracking=True))
    # each round's on/off pair ran back to back: its ratio is robust to the load drifting between rounds
    ratios = [tracked / untracked for tracked, untracked in zip(on, off, strict=True)]
    ratio = statistics.median(ratios)
    print(f"tracking off: samples/s per round: {', '.join(f'{v:.1f}' for v in off)}")
    print(f"tracking on:  samples/s per round: {', '.join(f'{v:.1f}' for v in on)}")
    print(f"throughput ratio on/off per round: {', '.join(f'{r:.4f}' for r in ratios)}")
    print(f"median throughput ratio on/off: {ratio:.4f} (overhead {1 - ratio:+.2%}; bar < {BAR:.0%})")


if __name__ == "__main__":
    main()
