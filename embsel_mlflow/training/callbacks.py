"""Trainer callbacks: training metrics into one metrics sink (batched), and a graceful stop on signals.

The sink is anything with ``log_metric_steps(entries)`` (``tracking.run_logger.RunLogger``), so
this module needs no MLflow; transformers' own MLflowCallback stays off (``report_to="none"``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from transformers import TrainerCallback

# transformers' log keys -> ours (per logging step); eval_<metric> become validation/<metric>.
STEP_KEYS = {
    "loss": "train/loss",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "epoch": "train/epoch",
}
# The summary transformers logs once at the end of train() (names distinct from the per-step ones).
SUMMARY_KEYS = {
    "train_runtime": "train/runtime_seconds",
    "train_samples_per_second": "train/overall_samples_per_second",
    "train_steps_per_second": "train/overall_steps_per_second",
    "train_loss": "train/average_loss",
}
log = logging.getLogger("embsel.train")
EVAL_SKIPPED = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}


class MetricSink(Protocol):
    def log_metric_steps(self, entries: list[tuple[str, float, int]]) -> None: ...


class MetricsCallback(TrainerCallback):
    """Buffers (key, value, step) and writes them in batches: at ``flush_size`` entries, on every
    evaluation and checkpoint, and at the end, so a checkpoint never runs ahead of its metrics."""

    def __init__(self, sink: MetricSink, *, samples_per_step: int, main_metric: str, flush_size: int = 500):
        self.sink = sink
        self.samples_per_step = samples_per_step
        self.main_metric = main_metric
        self.flush_size = flush_size
        self.buffer: list[tuple[str, float, int]] = []
        self._last_step = 0
        self._last_time = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_step = state.global_step  # a resumed run starts at its checkpoint's step
        self._last_time = time.perf_counter()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ):
        step = state.global_step
        logs = logs or {}
        entries = [(STEP_KEYS[k], v, step) for k, v in logs.items() if k in STEP_KEYS]
        if "loss" in logs:
            log.info("step %d/%d: loss %.4f", step, state.max_steps, logs["loss"])
            now = time.perf_counter()
            steps, seconds = step - self._last_step, now - self._last_time
            if steps > 0 and seconds > 0:
                entries.append(("train/samples_per_second", steps * self.samples_per_step / seconds, step))
            self._last_step, self._last_time = step, now
        entries += [(SUMMARY_KEYS[k], v, step) for k, v in logs.items() if k in SUMMARY_KEYS]
        for key, value in logs.items():
            if key.startswith("eval_") and key not in EVAL_SKIPPED and isinstance(value, int | float):
                name = key.removeprefix("eval_")
                entries.append((f"validation/{name}", value, step))
                if name == self.main_metric:
                    entries.append(("validation/main_score", value, step))
        self.buffer += [(k, float(v), s) for k, v, s in entries if isinstance(v, int | float)]
        if len(self.buffer) >= self.flush_size:
            self.flush()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()

    def flush(self) -> None:
        if self.buffer:
            entries, self.buffer = self.buffer, []
            self.sink.log_metric_steps(entries)


class StopOnSignal(TrainerCallback):
    """SIGINT / SIGTERM / SIGHUP while training: finish the step, save a checkpoint, stop.

    ``catching()`` installs the handlers (main thread only); ``signum`` is the signal received.
    The caller then ends the run KILLED; resuming continues from that exact step.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def _request(signum: int, frame: object) -> None:
            if self.signum is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
            self.signum = self.signum or signum

        previous = {signum: signal.signal(signum, _request) for signum in self.SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.signum is not None:
            control.should_log = True  # the loss since the last log line, at this step
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.signum is not None:  # already saved at the step; no evaluation on the way out
            control.should_save = False
            control.should_evaluate = False
