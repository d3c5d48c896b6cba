"""MLflow logging overhead of `embsel train`: training throughput with tracking on vs off, one process.

    python benchmarks/bench_train_logging.py                 # tiny model, 200 steps per round
    python benchmarks/bench_train_logging.py --steps 400 --rounds 5

Builds the tests' tiny sentence-transformer once, then fine-tunes a fresh copy of it with the
same pairs and arguments (metrics every 10 steps as shipped; ``--logging-steps 1`` is the worst
case) in alternating rounds: tracking
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


class TimedSink:
    """Forwards to a sink and adds up the seconds spent in it (the direct cost of logging)."""

    def __init__(self, sink: object) -> None:
        self.sink = sink
        self.seconds = 0.0

    def log_metric_steps(self, entries: list[tuple[str, float, int]]) -> None:
        started = time.perf_counter()
        self.sink.log_metric_steps(entries)  # type: ignore[attr-defined]
        self.seconds += time.perf_counter() - started


def _pairs(count: int):
    from embsel_mlflow.training.pairs import PairKind, TrainPairs

    words = ["guitar", "onion", "window", "field", "bicycle", "market", "frog", "card", "protein", "budget"]
    anchors = [f"question {i} about the {words[i % len(words)]} number {i * 7}" for i in range(count)]
    positives = [f"an answer {i} that mentions the {words[i % len(words)]} and {i * 3}" for i in range(count)]
    return TrainPairs(PairKind.positive, {"anchor": anchors, "positive": positives}, "synthetic")


def _round(st_dir: Path, work: Path, steps: int, tracking: bool, logging_steps: int) -> tuple[float, float]:
    """Samples per second of one training of ``steps`` steps (setup excluded), and the share
    of its time spent inside the logging calls."""
    from mlflow import MlflowClient
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config import TrainConfig
    from embsel_mlflow.tracking.run_logger import RunLogger
    from embsel_mlflow.training.losses import build_loss
    from embsel_mlflow.training.trainer import fine_tune, training_arguments

    cfg = TrainConfig(batch_size=16, max_steps=steps, logging_steps=logging_steps, eval_steps=0, save_steps=0)
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
    timed = TimedSink(sink)
    started = time.perf_counter()
    fine_tune(model, pairs, build_loss(model, cfg.loss, pairs), args, cfg, evaluator=None, sink=timed)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if monitor is not None:
        monitor.finish()
    return steps * cfg.batch_size / seconds, timed.seconds / seconds


def main() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from embsel_mlflow.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--logging-steps", type=int, default=TrainConfig.logging_steps, help="1: every step, the worst case"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the other core takes stray work)"
    )
    args = parser.parse_args()
    print(f"tiny model, {args.steps} steps per round, metrics logged every {args.logging_steps} step(s)")
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    logging.getLogger("embsel.train").setLevel(logging.WARNING)  # no step lines in the timing
    from tests.tiny_models import build_tiny_sentence_transformer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        st_dir = build_tiny_sentence_transformer(work / "tiny_st")
        _round(st_dir, work, 20, True, 1)  # warm-up: imports, the sqlite store, allocator
        on, off, shares = [], [], []
        for _ in range(args.rounds):  # alternating, so load on a shared machine hits both alike
            off.append(_round(st_dir, work, args.steps, False, args.logging_steps)[0])
            samples_per_second, share = _round(st_dir, work, args.steps, True, args.logging_steps)
            on.append(samples_per_second)
            shares.append(share)
    # each round's on/off pair ran back to back: its ratio is robust to the load drifting between rounds
    ratios = [tracked / untracked for tracked, untracked in zip(on, off, strict=True)]
    ratio = statistics.median(ratios)
    print(f"tracking off: samples/s per round: {', '.join(f'{v:.1f}' for v in off)}")
    print(f"tracking on:  samples/s per round: {', '.join(f'{v:.1f}' for v in on)}")
    print(f"throughput ratio on/off per round: {', '.join(f'{r:.4f}' for r in ratios)}")
    print(f"median throughput ratio on/off: {ratio:.4f} (overhead {1 - ratio:+.2%}; bar < {BAR:.0%})")
    print(
        f"time inside the MLflow logging calls, tracking on: median {statistics.median(shares):.2%} "
        f"of training time (per round: {', '.join(f'{v:.2%}' for v in shares)})"
    )


if __name__ == "__main__":
    main()
