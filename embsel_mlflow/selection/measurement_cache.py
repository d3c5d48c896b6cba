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
Layout: ``<cache.dir>/efficiency/<key>.json``, written atomically; an unreadable file is
ignored and measured again. ``embsel cache clear`` deletes them with the embeddings.
"""

from __future__ import annotations

import contextlib
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
from embsel_mlflow.models.device import cpu_model
from embsel_mlflow.selection.efficiency import Efficiency, measure_efficiency, sample_texts, uncached

if TYPE_CHECKING:
    from embsel_mlflow.config import EfficiencyConfig
    from embsel_mlflow.data.task_data import TaskData

log = logging.getLogger("embsel.select")

# Bump when how a candidate is timed changes: older measurements are then not comparable.
METHOD_VERSION = 1
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
MEASURED, REUSED = "measured", "reused"


@dataclass(frozen=True)
class Provenance:
    """Where a candidate's efficiency numbers come from: timed now, or reused from ``measured_at``."""

    source: str  # MEASURED | REUSED
    measured_at: str  # ISO 8601, UTC
    key: str | None = None  # the measurement's key (None when nothing is kept)

    def tags(self) -> dict[str, str]:
        tags = {"embsel.efficiency_source": self.source, "embsel.efficiency_measured_at": self.measured_at}
        if self.key:
            tags["embsel.efficiency_key"] = self.key
        return tags


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hardware_fingerprint(device: str | None) -> dict[str, Any]:
    """The machine facts a timing depends on (torch's thread count only once torch is loaded)."""
    facts: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": cpu_model(),
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
    """sha256 over the model's cache key, the timed texts and settings, and the machine."""
    from embsel_mlflow.models.cache import cache_model_key

    inner = uncached(model)
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
    """Efficiency measurements on disk under ``directory``, keyed by :func:`measurement_key`."""

    def __init__(self, directory: Path, *, reuse: bool = True) -> None:
        self.directory = Path(directory)
        self.reuse = reuse  # False: time again and keep the new measurement in place of the old

    def measure(
        self, model: Any, data: TaskData, cfg: EfficiencyConfig, *, billed_tokens: int | None = None
    ) -> tuple[Efficiency, Provenance]:
        """The stored measurement for (model, data sample, machine), or a fresh one (then stored)."""
        from embsel_mlflow.models.base import API

        if uncached(model).source.origin == API:  # the network, not this machine, sets its speed
            return measure_now(model, data, cfg, billed_tokens=billed_tokens)
        key = measurement_key(model, data, cfg)
        stored = self._load(key) if self.reuse else None
        if stored is not None:
            efficiency, measured_at = stored
            log.info("efficiency: reusing the measurement of %s (%s)", measured_at, key[:12])
            return efficiency, Provenance(REUSED, measured_at, key)
        efficiency, provenance = measure_now(model, data, cfg, billed_tokens=billed_tokens)
        self._save(key, efficiency, provenance.measured_at)
        return efficiency, Provenance(MEASURED, provenance.measured_at, key)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def _load(self, key: str) -> tuple[Efficiency, str] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            values = record["efficiency"]
            # a field added since (images_per_second, ...) is absent from older records: its default
            known = [f.name for f in fields(Efficiency) if f.name in values or f.default is MISSING]
            efficiency = Efficiency(**{name: float(values[name]) for name in known})
            return efficiency, str(record["measured_at"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("efficiency: ignoring unreadable measurement %s (%s)", path, err)
            return None

    def _save(self, key: str, efficiency: Efficiency, measured_at: str) -> None:
        record = {"measured_at": measured_at, "efficiency": asdict(efficiency)}
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
    model: Any, data: TaskData, cfg: EfficiencyConfig, *, billed_tokens: int | None = None
) -> tuple[Efficiency, Provenance]:
    """Time the candidate now (nothing kept)."""
    measured_at = _now()
    return measure_efficiency(model, data, cfg, billed_tokens=billed_tokens), Provenance(
        MEASURED, measured_at
    )
