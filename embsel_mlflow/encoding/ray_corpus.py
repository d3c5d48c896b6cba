"""Encode a corpus into the embedding cache with a Ray Data pipeline.

The driver builds the candidate once (its cache key, and a bad model config fails before Ray
starts), keeps the distinct texts the cache does not hold yet, and hands them to Ray Data in
blocks of ``block_texts``. ``map_batches`` runs them through an actor pool in which each actor
builds the candidate once (``candidates.build_encoder``) and writes every batch of
``batch_size`` texts as one cache shard (``models.cache.write_shard``: a temporary file renamed
into place, so a reader never sees half a shard). A killed actor is restarted and its batch
retried (``max_restarts`` / ``max_task_retries``); a retried batch whose shard was already
written writes an identical second one, which costs disk, never correctness.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embsel_mlflow.config import CacheConfig, DataConfig, ModelConfig
    from embsel_mlflow.config.embed import EmbedConfig

log = logging.getLogger(__name__)

ROLES = {"query": "query", "document": "document", "symmetric": None}
# Environment a worker needs to import this package and stay offline like the driver.
_PASSED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


@dataclass(frozen=True)
class BatchDone:
    """One encoded batch, as the driver receives it."""

    pid: int  # the actor process that encoded it
    node: str  # its Ray node id
    texts: int


@dataclass
class EncodeReport:
    """What an encode did: counts, time, and the cluster it ran on."""

    model_key: str
    texts: int  # texts given, every role, repeats included
    unique_texts: int  # distinct (role, text) pairs
    cache_hits: int  # distinct texts the cache already held
    cache_misses: int  # distinct texts encoded now
    written: int  # embeddings written (a retried batch is counted once)
    batches: int
    seconds: float
    by_role: dict[str, int] = field(default_factory=dict)  # role -> distinct texts
    nodes: list[dict[str, Any]] = field(default_factory=list)  # the cluster's alive nodes
    actor_pids: dict[str, list[int]] = field(default_factory=dict)  # node id -> pids that encoded

    @property
    def texts_per_second(self) -> float:
        return self.cache_misses / self.seconds if self.seconds > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "texts": float(self.texts),
            "unique_texts": float(self.unique_texts),
            "cache_hits": float(self.cache_hits),
            "cache_misses": float(self.cache_misses),
            "embeddings_written": float(self.written),
            "batches": float(self.batches),
            "encode_seconds": self.seconds,
            "texts_per_second": self.texts_per_second,
            "ray_nodes": float(len(self.nodes)),
            "ray_actors": float(sum(len(pids) for pids in self.actor_pids.values())),
        }

    def summary(self) -> str:
        roles = ", ".join(f"{count} {role}" for role, count in self.by_role.items())
        return (
            f"{self.unique_texts} texts ({roles}): {self.cache_hits} already cached, {self.written} encoded "
            f"in {self.seconds:.1f} s ({self.texts_per_second:.0f} texts/s) on {len(self.nodes)} Ray node(s)"
        )


def check_settings(settings: EmbedConfig) -> None:
    """One line for a setting that cannot work, before anything is loaded."""
    from embsel_mlflow.errors import ConfigError

    for name in ("actors", "batch_size", "block_texts", "max_tasks_in_flight_per_actor"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"embed.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.num_cpus_per_actor < 0 or settings.num_gpus_per_actor < 0:
        raise ConfigError("embed.num_cpus_per_actor and embed.num_gpus_per_actor must be >= 0")
    for role in settings.roles or ():
        if role not in ROLES:
            raise ConfigError(f"embed.roles: unknown role {role!r}; choose from {sorted(ROLES)}")


def encode_into_cache(
    model: ModelConfig,
    texts: Mapping[str | None, Sequence[str]],
    cache_cfg: CacheConfig,
    settings: EmbedConfig,
    *,
    calibration_data: Sequence[DataConfig] = (),
    on_batch: Callable[[BatchDone], None] | None = None,
) -> EncodeReport:
    """Encode ``texts`` (role -> texts) with ``model`` on Ray into the cache ``cache_cfg`` names.

    ``calibration_data``: as ``build_encoder`` takes it (an int8 variant's calibration), so the
    cache key is the one ``evaluate`` on that data uses. ``on_batch`` sees each finished batch.
    """
    from embsel_mlflow.candidates.base import build_encoder, get_kind
    from embsel_mlflow.errors import ConfigError
    from embsel_mlflow.models.cache import cached_layer, open_cache, text_hash

    check_settings(settings)
    cache = open_cache(cache_cfg)
    if cache is None:
        raise ConfigError("embsel embed writes into the embedding cache; drop cache.enabled=false")
    kind = get_kind(model.kind, model=model.name)
    if not kind.embeds or kind.fitted_per_dataset:
        why = "ranks without embeddings" if not kind.embeds else "is fitted per dataset when it is evaluated"
        raise ConfigError(
            f"model.kind={model.kind} {why}: nothing to encode ahead; choose an embedding model"
        )
    cached = cached_layer(build_encoder(model, cache=cache, calibration_data=calibration_data))
    if cached is None:  # pragma: no cover - every embedding kind is cached when a cache is given
        raise ConfigError(f"model.kind={model.kind} is not cached; nothing to encode ahead")
    key = cached.model_key

    rows: list[dict[str, str]] = []
    given = unique = hits = 0
    by_role: dict[str, int] = {}
    for role, role_texts in texts.items():
        name = "symmetric" if role is None else role
        if settings.roles is not None and name not in settings.roles:
            continue
        distinct = {text_hash(text): text for text in role_texts}
        held = cache.contains(key, role, list(distinct))
        given += len(role_texts)
        unique += len(distinct)
        hits += len(held)
        by_role[name] = len(distinct)
        rows += [{"role": name, "text": text} for digest, text in distinct.items() if digest not in held]

    report = EncodeReport(key, given, unique, hits, len(rows), 0, 0, 0.0, by_role)
    if not rows:
        return report
    started = time.perf_counter()
    with _ray_connection(settings.ray_address) as ray:
        report.nodes = [
            {"id": node["NodeID"], "address": node["NodeManagerAddress"], **node["Resources"]}
            for node in ray.nodes()
            if node["Alive"]
        ]
        actor = {
            "model": model,
            "cache_root": str(cache.root),
            "max_size_bytes": cache.max_size_bytes,
            "model_key": key,
            "calibration_data": list(calibration_data),
        }
        for done in _run_pipeline(ray, rows, settings, actor):
            report.written += done.texts
            report.batches += 1
            pids = report.actor_pids.setdefault(done.node, [])
            if done.pid not in pids:
                pids.append(done.pid)
            if on_batch is not None:
                on_batch(done)
    report.seconds = time.perf_counter() - started
    return report


def _run_pipeline(
    ray: Any, rows: list[dict[str, str]], settings: EmbedConfig, actor: dict[str, Any]
) -> Iterator[BatchDone]:
    """Yield a ``BatchDone`` per encoded batch, as the actors finish them (``actor``: what each
    ``EncodeBatches`` is built with)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()  # quiet console; a bar only on a terminal
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # blocks of at most block_texts, and enough of them to keep every actor busy
    blocks = max(math.ceil(len(rows) / settings.block_texts), 2 * settings.actors)
    blocks = min(blocks, math.ceil(len(rows) / settings.batch_size))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter yet; Ray Data's own default is
        # unbounded, which would retry a batch that always kills its actor forever
        warnings.simplefilter("ignore")
        encoded = _encode_stage(dataset, settings, actor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer blocks than actors on a tiny corpus
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            for pid, node, count in zip(batch["pid"], batch["node"], batch["texts"], strict=True):
                yield BatchDone(int(pid), str(node), int(count))


def _encode_stage(dataset: Any, settings: EmbedConfig, actor: dict[str, Any]) -> Any:
    """The ``map_batches`` stage: an actor pool of ``EncodeBatches``."""
    from ray.data import ActorPoolStrategy

    return dataset.map_batches(
        EncodeBatches,
        fn_constructor_kwargs=actor,
        batch_size=settings.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(
            size=settings.actors, max_tasks_in_flight_per_actor=settings.max_tasks_in_flight_per_actor
        ),
        num_cpus=settings.num_cpus_per_actor,
        num_gpus=settings.num_gpus_per_actor,
        max_restarts=settings.max_restarts,
        max_task_retries=settings.max_task_retries,
    )


class EncodeBatches:
    """A Ray Data actor: builds the candidate once, then writes each batch as one cache shard."""

    def __init__(
        self,
        model: ModelConfig,
        cache_root: str,
        max_size_bytes: int,
        model_key: str,
        calibration_data: Sequence[DataConfig],
    ) -> None:
        from embsel_mlflow.candidates.base import build_encoder
        from embsel_mlflow.errors import ModelError
        from embsel_mlflow.models.cache import EmbeddingCache, cached_layer

        self._cache = EmbeddingCache(Path(cache_root), max_size_bytes=max_size_bytes)
        cached = cached_layer(build_encoder(model, cache=self._cache, calibration_data=calibration_data))
        if cached is None or cached.model_key != model_key:
            # another node resolved other weights: its embeddings must not go under this key
            raise ModelError(
                f"this Ray node loads different weights for model '{model.name}' than the driver; "
                "give every node the same model files"
            )
        self._model = cached.inner
        self._key = model_key

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        from embsel_mlflow.models.base import as_float32
        from embsel_mlflow.models.cache import text_hash

        roles = [str(role) for role in batch["role"]]
        for name in dict.fromkeys(roles):
            texts = [str(text) for text, role in zip(batch["text"], roles, strict=True) if role == name]
            role = ROLES[name]
            embeddings = as_float32(self._model.encode(texts, role=role), len(texts))
            self._cache.put(self._key, role, [text_hash(text) for text in texts], embeddings)
        node = ray.get_runtime_context().get_node_id()
        return {"pid": np.array([os.getpid()]), "node": np.array([node]), "texts": np.array([len(roles)])}


@contextlib.contextmanager
def _ray_connection(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (None: $RAY_ADDRESS, else a local instance); disconnected after
    unless the caller had connected already."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    # workers import this package as the driver does, and stay offline as it does
    env = {"PYTHONPATH": path, **{k: os.environ[k] for k in _PASSED_ENV if k in os.environ}}
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {} if address else {"include_dashboard": False}
    logging.getLogger("ray").setLevel(logging.ERROR)
    # The driver's core worker writes notes to stderr (a note on actor restarts, the log level it
    # read): only errors, which raise here anyway, would be worth a line on the console.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    with _stderr_silenced():
        ray.init(
            address=address, logging_level=logging.ERROR, log_to_driver=False,
            runtime_env={"env_vars": env}, **options,
        )  # fmt: skip
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null meanwhile (native code writes there); an exception still raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
