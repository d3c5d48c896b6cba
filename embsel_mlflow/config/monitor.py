"""``conf/monitor/``: drift, text signals and quality checks (``monitoring/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from embsel_mlflow.config.data import TableConfig


@dataclass
class DriftMethodConfig:
    """One drift method: on or off, and an optional PCA (fitted on the reference) before it runs."""

    enabled: bool = True
    pca_components: int | None = None  # None: the full embeddings


@dataclass
class MmdConfig(DriftMethodConfig):
    bandwidth: float | None = None  # RBF sigma; None: the median heuristic on the pooled sample


@dataclass
class ClassifierConfig(DriftMethodConfig):
    folds: int = 5  # stratified cross-validation folds
    regularization: float = 10.0  # ridge alpha (on standardised features): larger is smoother


@dataclass
class KsConfig(DriftMethodConfig):
    correction: str = "fdr_bh"  # fdr_bh | holm | bonferroni, over the dimensions


@dataclass
class DriftConfig:
    """Embedding drift tests (``embsel_mlflow.monitoring``), each with a p-value under "no drift"."""

    alpha: float = 0.05  # per-method significance; the window's overall verdict is Bonferroni over methods
    permutations: int = 1000  # for the mean-distance and MMD permutation tests
    max_samples: int = 1000  # per side, drawn with `seed`: bounds the cost of every method
    seed: int = 0
    mean_distance: DriftMethodConfig = field(default_factory=DriftMethodConfig)
    mmd: MmdConfig = field(default_factory=MmdConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ks: KsConfig = field(default_factory=KsConfig)


@dataclass
class TextSignalsConfig:
    """Text-level signals per window, computed with the profiling code (lengths, tokens, languages)."""

    enabled: bool = True
    max_length_shift: float = 0.5  # relative change of the mean token length that is flagged
    max_truncation_increase: float = 0.05  # absolute increase of the truncation rate
    max_unknown_token_increase: float = 0.01  # absolute increase of the unknown-token rate
    max_new_language_share: float = 0.1  # share of texts in a language the reference (almost) lacks
    min_language_share: float = 0.01  # a language below this share of the reference counts as new


@dataclass
class QualityConfig:
    """Quality monitoring of labelled windows: the task's evaluator against a baseline score."""

    enabled: bool = True
    tolerance: float = 0.02  # alert when the main score drops by more than this (absolute)
    # Baseline: this run's metric; else the registered model's source run's score for this dataset;
    # else (none given, or the source run never scored this dataset) the reference data evaluated
    # in a child of the monitor's parent run.
    baseline_run_id: str | None = None
    baseline_metric: str | None = None  # default: main_score, else <candidate>/<dataset> (select runs)


@dataclass
class WindowFilesConfig:
    """Current windows from files: a list (one window each) or a directory (one file per window)."""

    paths: list[str] = field(default_factory=list)  # relative to root unless absolute
    dir: str | None = None
    pattern: str = "*"  # glob of the window files in dir
    order_by: str = "name"  # name | timestamp (the earliest timestamp_column value of each file)
    timestamp_column: str | None = None  # the window's time on the MLflow time axis (its latest value)
    root: str = "."
    table: TableConfig = field(default_factory=TableConfig)  # reader options and role -> column mapping


@dataclass
class MonitorConfig:
    """What ``embsel monitor`` checks and when it alerts."""

    reference_split: str | None = None  # the reference data's split; None: data.eval_split
    reference_embeddings: str | None = None  # a .npy of precomputed reference embeddings (one row per text)
    # A fixed-seed sample of the reference texts (None: all). Bounded by default, so a reference of
    # a million texts costs what 100k do: drift compares drift.max_samples per side anyway, and the
    # text signals are shares and means that a sample this size pins down.
    max_reference_texts: int | None = 100_000
    drift: DriftConfig = field(default_factory=DriftConfig)
    text: TextSignalsConfig = field(default_factory=TextSignalsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    projection_points: int = 2000  # points per side in the 2-D projection plot
    shifted_examples: int = 10  # most shifted current texts shown with their nearest reference texts
    neighbours: int = 3
    drift_exit_code: int = 3  # exit code when drift or a quality drop is detected
