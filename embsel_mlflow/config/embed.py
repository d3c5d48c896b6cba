"""The ``embed`` node of ``embsel embed``: corpus encoding on a Ray cluster (``encoding/``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EmbedConfig:
    """How ``embsel embed`` encodes a data config's texts into the embedding cache with Ray Data."""

    # The Ray cluster: an address (127.0.0.1:6379, ray://host:10001, auto); None: $RAY_ADDRESS,
    # else a local Ray instance started for this run.
    ray_address: str | None = None
    # the roles to encode (query, document, symmetric); None: every role the family embeds
    roles: list[str] | None = None
    actors: int = 2  # the actor pool: each actor loads the model once
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    batch_size: int = 256  # texts per map_batches call: one cache shard each
    block_texts: int = 4096  # texts per input block: what an actor holds at once is bounded by it
    max_tasks_in_flight_per_actor: int = 2  # queued batches per actor (memory per worker)
    max_restarts: int = 3  # a killed actor is restarted this many times ...
    max_task_retries: int = 3  # ... and its batch retried
