"""``conf/select/``: the selection's statistics, constraints, variants (``selection/``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from embsel_mlflow.config.model import Backend, EmbeddingDtype, Precision, Quantization


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
class RayConfig:
    """``select.executor=ray``: the cluster, and what a candidate's task reserves by default (a
    candidate's ``model.resources`` overrides it, e.g. a GPU for a large model)."""

    address: str | None = None  # null: RAY_ADDRESS, else a Ray instance started for this selection
    num_cpus: float = 1.0
    num_gpus: float = 0.0


EXECUTORS = ("sequential", "ray")
# MLflow's rules for a registered model's name and alias (mlflow.utils.validation), checked before
# any run starts instead of failing after the whole selection.
_ALIAS = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")


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
    # Where the candidate x dataset pairs run: one after the other in this process, or as Ray tasks
    # on the cluster of `select.ray` (each child run is logged by its task, on the node that ran it).
    executor: str = "sequential"  # sequential | ray
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        # ValueError: to_job_config turns it into the one `error:` line, the run FAILED, exit 2
        if self.register is not None and (not self.register.strip() or set("/:") & set(self.register)):
            raise ValueError(
                f"select.register='{self.register}': a registered model name cannot be empty or "
                "contain '/' or ':'; use e.g. select.register=my_embedder"
            )
        alias = self.champion_alias
        if not _ALIAS.match(alias) or _VERSION_ALIAS.match(alias) or alias.lower() == "latest":
            raise ValueError(
                f"select.champion_alias='{alias}': use letters, digits, '_' and '-' (not 'latest' or "
                "'v<number>'), e.g. select.champion_alias=champion"
            )
        if self.executor not in EXECUTORS:
            raise ValueError(f"select.executor must be one of {', '.join(EXECUTORS)}, got '{self.executor}'")
