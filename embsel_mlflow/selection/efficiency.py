"""What a candidate costs on this machine: throughput, latency, size, memory and API spend.

Measured on a fixed sample of the dataset's own texts with the *uncached* model, so a warm
embedding cache never makes a model look faster than it is.

Throughput is in the unit of what the dataset's family embeds (``media.modality_of`` of the
timed sample): texts per second for texts, images per second for images, seconds of audio per
second for audio (the clips' ``Media.duration_s``: a model that embeds 10 s clips at 2 clips/s
processes 20 s of sound per second). Each is its own metric (``efficiency/texts_per_second``,
``efficiency/images_per_second``, ``efficiency/audio_seconds_per_second``), so a number is never
read in the wrong unit; tokens per second are for texts only.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.families import family_of
from embsel_mlflow.media.items import AUDIO, IMAGE, TEXT, Media, modality_of

if TYPE_CHECKING:
    from embsel_mlflow.config import EfficiencyConfig
    from embsel_mlflow.data.task_data import TaskData

Item = str | Media  # what a timed sample holds: texts, or image / audio references

MB = 1024**2
_MEMORY_POLL_S = 0.005
# Throughput: the batch is encoded again until this much time has passed (at most _MAX_PASSES
# times). One pass of a static model or LSA takes milliseconds, too short for a stable reading;
# a transformer passes once. The same rule for every kind.
_MIN_TIMED_SECONDS = 0.25
_MAX_PASSES = 100
# modality -> (the Efficiency field of its throughput, its unit as the leaderboard writes it)
THROUGHPUT: dict[str, tuple[str, str]] = {
    TEXT: ("texts_per_second", "texts/s"),
    IMAGE: ("images_per_second", "images/s"),
    AUDIO: ("audio_seconds_per_second", "audio s/s"),
}


@dataclass
class Efficiency:
    """One candidate on one dataset; NaN where a quantity does not apply (e.g. cost of a local model,
    texts per second on an image dataset: see ``THROUGHPUT``)."""

    texts_per_second: float
    tokens_per_second: float
    latency_p50_ms: float
    latency_p95_ms: float
    model_size_mb: float
    num_parameters: float
    embedding_dim: float
    peak_memory_mb: float
    cost_usd: float  # this evaluation, for API candidates
    cost_per_million_tokens: float
    bytes_per_vector: float = math.nan  # one stored embedding (float32, int8 or bits)
    memory_per_million_docs_mb: float = math.nan  # stored vectors of a million documents
    images_per_second: float = math.nan  # image datasets
    audio_seconds_per_second: float = math.nan  # audio datasets: seconds of sound embedded per second

    def metrics(self) -> dict[str, float]:
        """Child-run metrics under ``efficiency/`` (NaN values are left out)."""
        return {f"efficiency/{k}": v for k, v in asdict(self).items() if not math.isnan(v)}


def sample_texts(data: TaskData, size: int) -> tuple[list[Item], list[Item], str | None]:
    """(batch items, single-query items, role of the batch) drawn from the dataset, as its family says.

    Retrieval times documents in batches (what indexing costs) and queries one at a time (what
    serving costs); other tasks use the items they evaluate for both. Items are texts, or image /
    audio references for a media family (decoded by the model, so decoding is timed too).
    """
    batch, singles, role = family_of(data).timing_texts(data.examples)
    return list(batch[:size]), list(singles), role


def throughput_units(items: list[Item]) -> float:
    """How much one pass over ``items`` processes, in its throughput unit: items, or audio seconds."""
    if modality_of(items) == AUDIO:
        durations = [item.duration_s for item in items if isinstance(item, Media)]
        if any(duration is None for duration in durations):
            return math.nan  # a clip whose length is unknown: no audio rate rather than a wrong one
        return float(sum(d for d in durations if d is not None))
    return float(len(items))


def uncached(model: Any) -> Any:
    """The model behind an embedding cache (``inner``), or the model itself."""
    return getattr(model, "inner", model)


def timed_network(model: Any) -> Any:
    """The network that runs when ``model`` encodes, uncached: a stored-embedding variant's (int8,
    binary, truncated) is its base's float model, whose output it only stores differently."""
    from embsel_mlflow.models.stored_embeddings import StoredEmbeddingEncoder

    model = uncached(model)
    while isinstance(model, StoredEmbeddingEncoder):
        model = uncached(model.float_encoder.base)
    return model


def stored_format_fields(model: Any) -> dict[str, float]:
    """What a stored format changes in an efficiency: dimensions and bytes per stored vector."""
    dim = getattr(uncached(model), "embedding_dim", 0) or 0
    return {"embedding_dim": float(dim), **stored_vector_size(uncached(model))} if dim else {}


def count_tokens(model: Any, texts: Sequence[str]) -> int:
    """Tokens the model sees in ``texts`` (its tokenizer, truncated to its max length), else words."""
    tokenizer = getattr(model, "tokenizer", None)
    if callable(tokenizer):
        max_length = getattr(model, "max_seq_length", None)
        encoded = tokenizer(
            list(texts), add_special_tokens=True, truncation=max_length is not None, max_length=max_length
        )
        return sum(len(ids) for ids in encoded["input_ids"])
    return sum(len(text.split()) for text in texts)


def _rss_bytes() -> int | None:
    """Resident memory of this process (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def peak_memory() -> Iterator[list[float]]:
    """Yield a one-element list that holds, on exit, the peak memory increase in MB (NaN if unknown).

    CUDA: torch's peak allocation; CPU: resident memory polled by a background thread.
    """
    import sys

    out = [math.nan]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield out
        out[0] = (torch.cuda.max_memory_allocated() - start) / MB
        return
    baseline = _rss_bytes()
    if baseline is None:
        yield out
        return
    peak = [baseline]
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(_MEMORY_POLL_S):
            peak[0] = max(peak[0], _rss_bytes() or 0)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes() or 0)
        out[0] = (peak[0] - baseline) / MB


def is_ranker(model: Any) -> bool:
    """A candidate that ranks documents without embeddings (BM25)."""
    from embsel_mlflow.models.base import Ranker

    return isinstance(uncached(model), Ranker)


def _encode_batch(model: Any, texts: list[Item], role: str | None, corpus: list[Item]) -> None:
    if is_ranker(model):  # index the corpus sample and rank the texts against it
        model.rank(texts, corpus, 10)
    else:
        model.encode(texts, role=role)


def _encode_one(model: Any, text: Item, corpus: list[Item]) -> None:
    if is_ranker(model):
        model.rank([text], corpus, 10)
    else:  # a single query; role prompts apply to texts only
        model.encode([text], role="query" if isinstance(text, str) else None)


def measure_efficiency(
    model: Any,
    data: TaskData,
    cfg: EfficiencyConfig,
    *,
    billed_tokens: int | None = None,
    reference: tuple[Any, Efficiency] | None = None,
) -> Efficiency:
    """Time ``model`` (uncached) on a sample of ``data``: the same texts and clock for every kind.

    ``billed_tokens`` are the tokens an API candidate was billed for during the evaluation
    (see :func:`tokens_used`); they price it. ``reference``: the base a variant is a cheaper
    version of, with its efficiency: the two are timed in alternate passes (and alternate single
    queries), so load that comes and goes hits both alike, and the variant's throughput and
    latency are the base's scaled by the ratio measured side by side.
    """
    model = uncached(model)
    batch, singles, role = sample_texts(data, cfg.sample_size)
    modality = modality_of(batch)
    texts = [item for item in batch if isinstance(item, str)]
    tokens = count_tokens(model, texts) if modality == TEXT else math.nan
    units = throughput_units(batch)
    timed = [model] if reference is None else [model, uncached(reference[0])]

    for text in singles[: cfg.warmup]:
        for network in timed:
            _encode_one(network, text, batch)
    if reference is not None:  # its own peak memory, alone (not the base's, interleaved with it)
        with peak_memory() as memory:
            _encode_batch(model, batch, role, batch)
    passes, seconds = 0, [0.0] * len(timed)
    with peak_memory() if reference is None else contextlib.nullcontext([math.nan]) as timed_memory:
        while passes == 0 or (min(seconds) < _MIN_TIMED_SECONDS and passes < _MAX_PASSES):
            for index, network in enumerate(timed):
                started = time.perf_counter()
                _encode_batch(network, batch, role, batch)
                seconds[index] += time.perf_counter() - started
            passes += 1
    if reference is None:
        memory = timed_memory
    latencies: list[list[float]] = [[] for _ in timed]
    for text in singles[: cfg.latency_queries]:
        for index, network in enumerate(timed):
            started = time.perf_counter()
            _encode_one(network, text, batch)
            latencies[index].append((time.perf_counter() - started) * 1000.0)
    p50, p95 = _percentiles(latencies[0])
    rate = passes * units / seconds[0] if seconds[0] > 0 else math.nan
    token_rate = passes * tokens / seconds[0] if seconds[0] > 0 else math.nan
    if reference is not None:  # the base's own numbers, times what side by side showed
        base = reference[1]
        base_p50, base_p95 = _percentiles(latencies[1])
        speedup = seconds[1] / seconds[0] if seconds[0] > 0 else math.nan
        rate = getattr(base, THROUGHPUT[modality][0]) * speedup
        token_rate = base.tokens_per_second * speedup
        p50, p95 = base.latency_p50_ms * p50 / base_p50, base.latency_p95_ms * p95 / base_p95

    price = getattr(model, "price_per_million_tokens", None)
    cost = math.nan
    if price is not None and billed_tokens is not None:
        cost = billed_tokens * float(price) / 1e6
    size = getattr(model, "disk_size_bytes", None)
    throughput = dict.fromkeys((field for field, _ in THROUGHPUT.values()), math.nan)
    throughput[THROUGHPUT[modality][0]] = rate
    return Efficiency(
        tokens_per_second=token_rate,
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        model_size_mb=size / MB if size else math.nan,
        num_parameters=float(getattr(model, "num_parameters", 0) or 0),
        embedding_dim=float(getattr(model, "embedding_dim", 0) or 0),
        peak_memory_mb=max(memory[0], 0.0) if not math.isnan(memory[0]) else math.nan,
        cost_usd=cost,
        cost_per_million_tokens=float(price) if price is not None else math.nan,
        **throughput,
        **stored_vector_size(model),
    )


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p95 in ms (NaN without any)."""
    if not latencies:
        return math.nan, math.nan
    p50, p95 = np.percentile(latencies, [50, 95])
    return float(p50), float(p95)


def stored_vector_size(model: Any) -> dict[str, float]:
    """Bytes per stored vector (float32 unless the variant stores int8 or bits) and per million documents."""
    dim = getattr(model, "embedding_dim", 0) or 0
    size = getattr(model, "bytes_per_vector", None) or 4 * dim
    if not size:
        return {}
    return {"bytes_per_vector": float(size), "memory_per_million_docs_mb": size * 1e6 / MB}


def tokens_used(model: Any) -> int | None:
    """Tokens an API candidate has been billed for so far (None for local models)."""
    used = getattr(uncached(model), "tokens_used", None)
    return int(used) if used is not None else None
