"""Efficiency measurements kept beside the embedding cache, so an identical selection does not time again.

Timing a candidate (a batch for throughput and memory, single texts for latency) costs seconds
per pair, and on a warm embedding cache it would dominate a repeated selection. A measurement
is reused only when everything that decides it is the same:

- the model: its embedding-cache key (weights, pooling, prompts, length, precision, ...);
- the timed texts: a digest of the batch and single-query texts (images and audio: their
  modality and content hash, never their path), their role and the ``select.efficiency`` settings;
- the machine: CPU model, CPUs available, thread settings, device (and GPU), and the versions
  of the libraries that encode (torch, transformers, model2vec, scikit-learn, ...).

Otherwise the candidate is timed again, always with the uncached model (never cached encodes).
API candidates are always timed: an endpoint's speed is not a property of this machine.

The conditions of a measurement are kept with it: how many CPUs other processes kept busy
while it was taken (sampled from /proc/stat, this process's own time left out) and the load
average. A measurement taken on a busy machine is not reused on an idle one, nor the reverse: it
is timed again when the share of CPUs busy with other work differs by ``CONDITIONS_TOLERANCE``
(half the CPUs) or more. The conditions are in the pair's tags.

A stored-embedding variant (int8, binary, truncated) runs its base's network: its key is the
network's, so it takes the base's timing (measured once, in this run or reused), with its own
dimensions and bytes per vector.
Layout: ``<cache.dir>/efficiency/<key>.json``, written atomically; an unreadable file is
ignored and measured again. ``embsel cache clear`` deletes them with the embeddings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import uuid
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.media.items import Media, item_hash
from embsel_mlflow.models.device import cpu_flags, cpu_model
from embsel_mlflow.selection.efficiency import (
    Efficiency,
    measure_efficiency,
    sample_texts,
    stored_format_fields,
    timed_network,
)

if TYPE_CHECKING:
    from embsel_mlflow.config import EfficiencyConfig
    from embsel_mlflow.data.task_data import TaskData

log = logging.getLogger("embsel.select")

# Bump when how a candidate is timed changes: older measurements are then not comparable.
METHOD_VERSION = 2
# Re-time when the share of this process's CPUs that other work kept busy differs by this or more
# between the stored measurement and now (measured at load 3 on 2 CPUs, now idle: 1.0 vs 0).
CONDITIONS_TOLERANCE = 0.5
_CONDITIONS_SAMPLE_S = 0.1
_CONDITIONS_FRESH_S = 10.0  # a sample this recent stands for now (a warm selection checks every pair)
# Libraries whose code runs inside a timed encode.
_ENCODING_PACKAGES = (
    "embsel-mlflow",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "model2vec",
    "scikit-learn",
    "scipy",
    "numpy",
    "bm25s",
)
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM")
MEASURED, REUSED, SAME_NETWORK = "measured", "reused", "same_network"


@dataclass(frozen=True)
class Provenance:
    """Where a candidate's efficiency numbers come from: timed now, reused from ``measured_at``, or
    the same network's timing in this run (a stored-embedding variant takes its base's)."""

    source: str  # MEASURED | REUSED | SAME_NETWORK
    measured_at: str  # ISO 8601, UTC
    key: str | None = None  # the measurement's key (None when nothing is kept)
    conditions: dict[str, float] | None = None  # machine_conditions() when it was measured

    def tags(self) -> dict[str, str]:
        tags = {"embsel.efficiency_source": self.source, "embsel.efficiency_measured_at": self.measured_at}
        if self.key:
            tags["embsel.efficiency_key"] = self.key
        if self.conditions:
            tags["embsel.efficiency_conditions"] = describe_conditions(self.conditions)
        return tags


def machine_conditions() -> dict[str, float]:
    """How busy this machine is with other work now: ``other_busy_cpus`` of ``cpus`` (this process's
    CPUs, sampled over 0.1 s from /proc/stat, this process's own time left out) and ``load_1m``.

    Empty where /proc is not there. A sample from the last few seconds stands for now.
    """
    import time

    now = time.monotonic()
    if _last_conditions and now - _last_conditions[0] < _CONDITIONS_FRESH_S:
        return dict(_last_conditions[1])
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    first = _cpu_ticks(cpus)
    if first is None:
        return {}
    time.sleep(_CONDITIONS_SAMPLE_S)
    second = _cpu_ticks(cpus)
    if second is None:
        return {}
    busy, total, own = (b - a for a, b in zip(first, second, strict=True))
    count = len(cpus) if cpus else os.cpu_count() or 1
    other = max(0.0, (busy - own) / total * count) if total > 0 else 0.0
    found = {"other_busy_cpus": round(min(other, count), 2), "cpus": float(count)}
    with contextlib.suppress(OSError):
        found["load_1m"] = round(os.getloadavg()[0], 2)
    _last_conditions[:] = [now, found]
    return dict(found)


_last_conditions: list[Any] = []


def _cpu_ticks(cpus: list[int] | None) -> tuple[int, int, int] | None:
    """(busy, total) clock ticks of ``cpus`` (all: None) and this process's own (user + system)."""
    busy = total = 0
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            for line in handle:
                name, *values = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                if cpus is not None and int(name[3:]) not in cpus:
                    continue
                ticks = [int(value) for value in values[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields_after_name = handle.read().rsplit(")", 1)[1].split()
        own = int(fields_after_name[11]) + int(fields_after_name[12])  # utime, stime (all threads)
    except (OSError, ValueError, IndexError):
        return None
    return busy, total, own


def conditions_differ(then: dict[str, float] | None, now: dict[str, float]) -> bool:
    """Whether the share of CPUs busy with other work moved by ``CONDITIONS_TOLERANCE`` or more."""
    if not then or not now or "other_busy_cpus" not in then or "other_busy_cpus" not in now:
        return False  # a measurement from before conditions were kept, or no /proc: nothing to compare
    share_then = then["other_busy_cpus"] / max(then.get("cpus", 1.0), 1.0)
    share_now = now["other_busy_cpus"] / max(now.get("cpus", 1.0), 1.0)
    return abs(share_then - share_now) >= CONDITIONS_TOLERANCE


def describe_conditions(conditions: dict[str, float]) -> str:
    """``other work on 0.1 of 2 CPUs, load 0.52``."""
    text = f"other work on {conditions.get('other_busy_cpus', 0):g} of {conditions.get('cpus', 0):g} CPUs"
    return text + (f", load {conditions['load_1m']:g}" if "load_1m" in conditions else "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hardware_fingerprint(device: str | None) -> dict[str, Any]:
    """The machine facts a timing depends on (torch's thread count only once torch is loaded)."""
    facts: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": cpu_model(),
        # bf16 / AMX / AVX-512 decide a half-precision variant's speed (a VM may hide them)
        "cpu_flags": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "thread_env": {name: os.environ.get(name) for name in _THREAD_ENV},
        "device": device,
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _ENCODING_PACKAGES},
    }
    torch = sys.modules.get("torch")
    if torch is not None:  # loaded by a transformer candidate; static, LSA and BM25 do not use it
        facts["torch_threads"] = torch.get_num_threads()
        if str(device or "").startswith("cuda") and torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _item_digest(item: str | Media) -> bytes:
    """A timed item's share of the key: a text's sha256 (as before media), a media item's content hash."""
    if isinstance(item, Media):
        return b"media\0" + item_hash(item)  # modality + content: a renamed copy is the same sample
    return hashlib.sha256(item.encode("utf-8")).digest()


def measurement_key(model: Any, data: TaskData, cfg: EfficiencyConfig) -> str:
    """sha256 over the timed network's cache key, the timed texts and settings, and the machine.

    The network, not the candidate: a stored-embedding variant has its base's key.
    """
    from embsel_mlflow.models.cache import cache_model_key

    inner = timed_network(model)
    batch, singles, role = sample_texts(data, cfg.sample_size)
    texts = hashlib.sha256()
    for text in [*batch, "\0singles\0", *singles[: max(cfg.warmup, cfg.latency_queries)]]:
        texts.update(_item_digest(text))
    parts = {
        "method": METHOD_VERSION,
        "model": cache_model_key(inner.identity, inner.source),
        "texts": texts.hexdigest(),
        "role": role,
        "settings": asdict(cfg),
        "hardware": hardware_fingerprint(getattr(inner, "device", None)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class MeasurementCache:
    """Efficiency measurements on disk under ``directory`` (None: this run's only), keyed by
    :func:`measurement_key`. What this run measured is reused for the same network either way."""

    def __init__(self, directory: Path | None, *, reuse: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.reuse = reuse  # False: time again and keep the new measurement in place of the old
        self._this_run: dict[str, tuple[Efficiency, Provenance]] = {}

    def measure(
        self,
        model: Any,
        data: TaskData,
        cfg: EfficiencyConfig,
        *,
        billed_tokens: int | None = None,
        reference: tuple[Any, Efficiency] | None = None,
    ) -> tuple[Efficiency, Provenance]:
        """The stored measurement for (network, data sample, machine), or a fresh one (then stored).

        ``reference``: the base a variant is timed against, interleaved (``measure_efficiency``).
        """
        from embsel_mlflow.models.base import API

        if timed_network(model).source.origin == API:  # the network, not this machine, sets its speed
            return measure_now(model, data, cfg, billed_tokens=billed_tokens)
        key = measurement_key(model, data, cfg)
        own = stored_format_fields(model)  # a stored-embedding variant's dimensions and bytes
        if key in self._this_run:
            efficiency, provenance = self._this_run[key]
            log.info("efficiency: the same network's timing in this run (%s)", key[:12])
            same = Provenance(SAME_NETWORK, provenance.measured_at, key, provenance.conditions)
            return dataclasses.replace(efficiency, **own), same
        stored = self._load(key) if self.reuse and self.directory is not None else None
        if stored is not None:
            efficiency, measured_at, conditions = stored
            now = machine_conditions()
            if not conditions_differ(conditions, now):
                log.info("efficiency: reusing the measurement of %s (%s)", measured_at, key[:12])
                provenance = Provenance(REUSED, measured_at, key, conditions)
                self._this_run[key] = efficiency, provenance
                return dataclasses.replace(efficiency, **own), provenance
            log.info(
                "efficiency: timing again: measured with %s, now %s",
                describe_conditions(conditions or {}),
                describe_conditions(now),
            )
        efficiency, provenance = measure_now(
            model, data, cfg, billed_tokens=billed_tokens, reference=reference
        )
        provenance = dataclasses.replace(provenance, key=key)
        self._this_run[key] = efficiency, provenance
        self._save(key, efficiency, provenance)
        return efficiency, provenance

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.json"

    def _load(self, key: str) -> tuple[Efficiency, str, dict[str, float] | None] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            values = record["efficiency"]
            # a field added since (images_per_second, ...) is absent from older records: its default
            known = [f.name for f in fields(Efficiency) if f.name in values or f.default is MISSING]
            efficiency = Efficiency(**{name: float(values[name]) for name in known})
            conditions = record.get("conditions")
            return efficiency, str(record["measured_at"]), dict(conditions) if conditions else None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("efficiency: ignoring unreadable measurement %s (%s)", path, err)
            return None

    def _save(self, key: str, efficiency: Efficiency, provenance: Provenance) -> None:
        if self.directory is None:
            return
        record = {
            "measured_at": provenance.measured_at,
            "conditions": provenance.conditions,
            "efficiency": asdict(efficiency),
        }
        tmp = self.directory / f".tmp-{uuid.uuid4().hex}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
            os.replace(tmp, self._path(key))  # atomic: a concurrent twin writes the same numbers
        except OSError as err:  # a read-only or full disk only costs a re-measurement next time
            log.warning("efficiency: could not keep the measurement in %s: %s", self.directory, err)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def measure_now(
    model: Any,
    data: TaskData,
    cfg: EfficiencyConfig,
    *,
    billed_tokens: int | None = None,
    reference: tuple[Any, Efficiency] | None = None,
) -> tuple[Efficiency, Provenance]:
    """Time the candidate now (nothing kept), with the conditions it was timed under (``reference``:
    a variant's base, timed in alternation with it)."""
    measured_at, conditions = _now(), machine_conditions()
    efficiency = measure_efficiency(model, data, cfg, billed_tokens=billed_tokens, reference=reference)
    return efficiency, Provenance(MEASURED, measured_at, conditions=conditions or None)
