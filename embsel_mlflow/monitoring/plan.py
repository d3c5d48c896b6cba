"""One invocation's plan: which windows are new (and their steps), which are skipped; the reference sample.

No MLflow here: the job reads the windows already monitored from the store and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from embsel_mlflow.config import MonitorConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media.items import Media
    from embsel_mlflow.monitoring.windows import Window


@dataclass(frozen=True)
class Seen:
    """A window monitored by an earlier invocation (a FINISHED child run)."""

    run_id: str
    step: int
    status: str


@dataclass
class PlannedWindow:
    window: Window
    step: int | None = None  # a new window's step on the time axis; None when skipped
    seen: Seen | None = None  # the same content was monitored by an earlier invocation
    duplicate: bool = False  # the same content as an earlier window of this invocation

    @property
    def new(self) -> bool:
        return self.step is not None

    def skip_line(self) -> str:
        """The console line of a skipped window."""
        if self.seen is not None:
            s, name = self.seen, self.window.name
            return f"window {name}: already monitored as step {s.step} ({s.status}, run {s.run_id}); skipped"
        return f"window {self.window.name}: the same content as an earlier window of this run; skipped"


@dataclass
class Plan:
    windows: list[PlannedWindow]  # in the order given

    @property
    def seen(self) -> list[PlannedWindow]:
        return [p for p in self.windows if p.seen is not None]

    @property
    def todo(self) -> list[PlannedWindow]:
        """The windows this invocation handles (new ones and duplicates), in order."""
        return [p for p in self.windows if p.seen is None]

    @property
    def new(self) -> list[PlannedWindow]:
        return [p for p in self.windows if p.new]


def plan_windows(windows: list[Window], seen: dict[str, Seen]) -> Plan:
    """Every window in one pass: already monitored (by digest), a duplicate of an earlier one, or new.

    New windows continue the time axis after the highest step already monitored.
    """
    if not windows:
        raise ConfigError(
            "no window to monitor: give current.paths=[file,...], current.dir=<folder of window files> "
            "or windows=[<data config>,...]"
        )
    step = max((s.step for s in seen.values()), default=-1) + 1
    planned, digests = [], set()
    for window in windows:
        if window.digest in seen:
            planned.append(PlannedWindow(window, seen=seen[window.digest]))
        elif window.digest in digests:
            planned.append(PlannedWindow(window, duplicate=True))
        else:
            digests.add(window.digest)
            planned.append(PlannedWindow(window, step=step))
            step += 1
    return Plan(planned)


@dataclass
class ReferenceSample:
    texts: list[str | Media]  # compared with every window (at most monitor.max_reference_texts)
    role: str | None  # the role the model embeds them in (retrieval queries: "query", as evaluate does)
    keep: np.ndarray  # their rows in the reference data's texts

    @property
    def modality(self) -> str:
        """text | image | audio: what the reference (and so every window) holds."""
        from embsel_mlflow.media.items import modality_of

        return modality_of(self.texts)

    @property
    def noun(self) -> str:
        from embsel_mlflow.monitoring.windows import ITEM_NOUNS

        return ITEM_NOUNS.get(self.modality, "items")


def reference_sample(data: TaskData, cfg: MonitorConfig) -> ReferenceSample:
    """The reference items (texts, or image / audio references), subsampled to ``max_reference_texts``,
    and their role."""
    from embsel_mlflow.monitoring.sampling import subsample_indices
    from embsel_mlflow.monitoring.windows import task_texts

    texts, role = task_texts(data)
    keep = subsample_indices(len(texts), cfg.max_reference_texts, cfg.drift.seed)
    return ReferenceSample([texts[i] for i in keep], role, keep)


def given_reference_embeddings(cfg: MonitorConfig, keep: np.ndarray) -> np.ndarray | None:
    """``monitor.reference_embeddings`` (.npy, one row per reference text), rows ``keep``; None when unset."""
    import numpy as np

    from embsel_mlflow.data.loader import resolve_path

    if not cfg.reference_embeddings:
        return None
    path = resolve_path(cfg.reference_embeddings, ".", "monitor.reference_embeddings")
    try:
        # Mapped, not read: only the sampled rows are copied (a million rows of 384 floats is 1.5 GB).
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"monitor.reference_embeddings: cannot read {path} as a .npy array ({exc})") from exc
    if matrix.ndim != 2:
        raise DataError(f"monitor.reference_embeddings: {path} holds shape {matrix.shape}; need texts x dims")
    if cfg.max_reference_texts is not None and len(keep) < len(matrix):
        return np.asarray(matrix[keep])
    return np.array(matrix)
