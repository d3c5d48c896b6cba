"""A content-addressed embedding cache on disk, shared by every run and process.

An embedding is keyed by (model key, role, text hash): the model key hashes the model's
identity (weights sha256 or hub revision, pooling, normalisation, prompts, max_seq_length,
precision, truncation, kind settings), the role is ``query``, ``document`` or ``symmetric``
(query and document embeddings are never shared: mteb issue 5383), and the text hash is a
BLAKE2b-128 of the UTF-8 text (of an image or a clip: of its modality and content hash, never its
path: ``media.item_hash``).

Layout: ``<dir>/embeddings/<model key>/<role>/<uuid>.emb``, one shard per encode call with
its misses. A shard is a 16-byte header (magic, version, dim, count), ``count`` text hashes,
the ``count x dim`` float32 matrix and a BLAKE2b-256 checksum of all that. Shards are written
to a temporary file and renamed into place, so concurrent writers never see or leave half a
shard; a shard whose size or checksum is wrong is deleted and its texts are encoded again.
Reading a shard refreshes its mtime; beyond ``max_size_gb`` the least recently used shards
are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import shutil
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.media.items import Media, item_hash
from embsel_mlflow.models.cache_dir import default_cache_dir

if TYPE_CHECKING:
    from embsel_mlflow.config import CacheConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.models.resolve import ResolvedModel

log = logging.getLogger(__name__)

_MAGIC = b"EMBC"
_VERSION = 1
_HEADER = struct.Struct("<4sHHII")  # magic, version, reserved, dim, count (16 bytes)
_HASH_BYTES = 16
_CHECKSUM_BYTES = 32
_CHECKSUM_BLOCK = 1 << 24  # hash a mapped shard 16 MiB at a time
_SUFFIX = ".emb"
_ROLE_DIRS = {None: "symmetric", "query": "query", "document": "document"}
_GB = 1024**3


def cache_dir(cfg: CacheConfig | None) -> Path:
    """The cache directory ``cfg`` names (the default one when it names none)."""
    return Path(cfg.dir).expanduser() if cfg is not None and cfg.dir else default_cache_dir()


def open_cache(cfg: CacheConfig) -> EmbeddingCache | None:
    """The embedding cache ``cfg`` describes, or None when ``cache.enabled=false``."""
    from embsel_mlflow.errors import ConfigError

    if not cfg.enabled:
        return None
    if cfg.max_size_gb <= 0:
        raise ConfigError(f"cache.max_size_gb must be > 0, got {cfg.max_size_gb}; or set cache.enabled=false")
    return EmbeddingCache(cache_dir(cfg), max_size_bytes=int(cfg.max_size_gb * _GB))


def text_hash(text: str | Media) -> bytes:
    """The key of one input: BLAKE2b-128 of a text, or of an image's / a clip's modality and content."""
    return item_hash(text)


@dataclass
class CacheInfo:
    dir: Path
    models: int
    shards: int
    embeddings: int
    size_bytes: int
    max_size_bytes: int
    derived_models_bytes: int = 0  # distilled static models and LSA fits (not counted in the limit)

    def lines(self) -> list[str]:
        mib = 1024**2
        return [
            f"dir:        {self.dir}",
            f"models:     {self.models}",
            f"shards:     {self.shards}",
            f"embeddings: {self.embeddings}",
            f"size:       {self.size_bytes / mib:.1f} MiB of {self.max_size_bytes / mib:.0f} MiB",
            f"derived:    {self.derived_models_bytes / mib:.1f} MiB (distilled static models, LSA fits)",
        ]


class CorruptShard(Exception):
    """A shard whose bytes do not match its header or checksum."""


class EmbeddingCache:
    """Get and put embeddings by (model key, role, text hash)."""

    def __init__(self, root: Path, *, max_size_bytes: int = 5 * _GB) -> None:
        self.root = Path(root)
        self.max_size_bytes = max_size_bytes
        # role dir -> shard -> its text hashes, packed (16 bytes each: a million cost 16 MB)
        self._index: dict[Path, dict[Path, bytes]] = {}

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def models_dir(self) -> Path:
        """Where derived models (distilled static models) are kept."""
        return self.root / "models"

    @property
    def measurements_dir(self) -> Path:
        """Where ``select`` keeps efficiency measurements (embsel_mlflow.selection.measurement_cache)."""
        return self.root / "efficiency"

    @property
    def plots_dir(self) -> Path:
        """Where rendered result plots are kept by content (tracking.plots.log_result_figure)."""
        return self.root / "plots"

    def get(self, model_key: str, role: str | None, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached embeddings of those ``hashes`` that are cached and intact."""
        wanted = set(hashes)
        role_dir = self._role_dir(model_key, role)
        where: dict[Path, list[tuple[int, bytes]]] = {}
        for shard, table in self._shards(role_dir).items():
            if not wanted:
                break
            rows = [(row, digest) for row, digest in _rows_of(table, wanted) if digest in wanted]
            if rows:
                where[shard] = rows
                wanted.difference_update(digest for _, digest in rows)
        found: dict[bytes, np.ndarray] = {}
        for shard, rows in where.items():
            try:
                # memory-mapped: only the rows asked for are copied out, and the mapping goes
                # with ``matrix``, so reading a corpus shard by shard keeps memory flat
                matrix = read_shard(shard)[1]
            except FileNotFoundError:  # evicted or cleared by another process meanwhile
                self._index.get(role_dir, {}).pop(shard, None)
                continue
            except CorruptShard as err:
                log.warning("embedding cache: dropping corrupt shard %s (%s)", shard, err)
                self._index.get(role_dir, {}).pop(shard, None)
                with contextlib.suppress(OSError):
                    shard.unlink()
                continue
            with contextlib.suppress(OSError):
                os.utime(shard)  # recently used: last to be evicted
            picked = matrix[[row for row, _ in rows]]  # a copy: the mapping closes with ``matrix``
            del matrix
            for (_, digest), vector in zip(rows, picked, strict=True):
                found[digest] = vector
        return found

    def put(self, model_key: str, role: str | None, hashes: Sequence[bytes], embeddings: np.ndarray) -> None:
        """Store one shard atomically, then evict the least recently used shards beyond the limit."""
        if len(hashes) == 0:
            return
        role_dir = self._role_dir(model_key, role)
        role_dir.mkdir(parents=True, exist_ok=True)
        shard = role_dir / f"{uuid.uuid4().hex}{_SUFFIX}"
        write_shard(shard, list(hashes), embeddings)
        self._index.setdefault(role_dir, {})[shard] = b"".join(hashes)
        self.evict()

    def contains(self, model_key: str, role: str | None, hashes: Sequence[bytes]) -> set[bytes]:
        """Those of ``hashes`` that a shard holds (shard headers only: no embedding is read)."""
        wanted = set(hashes)
        held: set[bytes] = set()
        for table in self._shards(self._role_dir(model_key, role)).values():
            held.update(digest for _, digest in _rows_of(table, wanted))
        return held

    def evict(self) -> int:
        """Delete least recently used shards until the cache fits its size limit; return how many."""
        shards = []
        for path in self._all_shards():
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                shards.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in shards)
        removed = 0
        for _, size, path in sorted(shards):
            if total <= self.max_size_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            total -= size
        return removed

    def info(self) -> CacheInfo:
        shards = list(self._all_shards())
        embeddings = 0
        size = 0
        for path in shards:
            with contextlib.suppress(OSError, CorruptShard):
                size += path.stat().st_size
                embeddings += _read_header(path)[1]
        models = {path.parent.parent for path in shards}
        derived = 0
        if self.models_dir.is_dir():
            for path in self.models_dir.rglob("*"):
                with contextlib.suppress(OSError):
                    derived += path.stat().st_size if path.is_file() else 0
        return CacheInfo(self.root, len(models), len(shards), embeddings, size, self.max_size_bytes, derived)

    def clear(self) -> None:
        """Delete every cached embedding, derived model, efficiency measurement and rendered plot."""
        for directory in (self.embeddings_dir, self.models_dir, self.measurements_dir, self.plots_dir):
            shutil.rmtree(directory, ignore_errors=True)
        self._index.clear()

    def _role_dir(self, model_key: str, role: str | None) -> Path:
        if role not in _ROLE_DIRS:
            raise ValueError(f"role must be one of {tuple(_ROLE_DIRS)}, got {role!r}")
        return self.embeddings_dir / model_key / _ROLE_DIRS[role]

    def _shards(self, role_dir: Path) -> dict[Path, bytes]:
        """Shard -> text hashes for every shard now in ``role_dir`` (headers read once per process)."""
        known = self._index.setdefault(role_dir, {})
        present = set(role_dir.glob(f"*{_SUFFIX}")) if role_dir.is_dir() else set()
        for gone in set(known) - present:
            del known[gone]
        for shard in sorted(present - set(known)):
            try:
                known[shard] = _read_hashes(shard)
            except OSError:
                continue  # evicted or cleared by another process meanwhile
            except CorruptShard as err:  # shards appear by rename, whole: this one was damaged later
                log.warning("embedding cache: dropping corrupt shard %s (%s)", shard, err)
                with contextlib.suppress(OSError):
                    shard.unlink()
        return known

    def _all_shards(self) -> list[Path]:
        if not self.embeddings_dir.is_dir():
            return []
        return list(self.embeddings_dir.glob(f"*/*/*{_SUFFIX}"))

    def dim(self, model_key: str) -> int | None:
        """The embedding dimension of ``model_key``'s shards (one header read), or None without any."""
        for shard in (self.embeddings_dir / model_key).glob(f"*/*{_SUFFIX}"):
            with contextlib.suppress(OSError, CorruptShard):
                return _read_header(shard)[0]
        return None


def write_shard(path: Path, hashes: list[bytes], embeddings: np.ndarray) -> None:
    """Write a shard to a temporary file in the same directory and rename it into place."""
    matrix = np.ascontiguousarray(embeddings, dtype="<f4")
    if matrix.ndim != 2 or matrix.shape[0] != len(hashes):
        raise ValueError(f"{len(hashes)} hashes but embeddings of shape {matrix.shape}")
    body = b"".join(
        [_HEADER.pack(_MAGIC, _VERSION, 0, matrix.shape[1], matrix.shape[0]), *hashes, matrix.tobytes()]
    )
    checksum = hashlib.blake2b(body, digest_size=_CHECKSUM_BYTES).digest()
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as handle:
            handle.write(body)
            handle.write(checksum)
        os.replace(tmp, path)  # atomic: readers see the whole shard or none of it
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_shard(path: Path) -> tuple[list[bytes], np.ndarray]:
    """(text hashes, float32 matrix) of a shard; CorruptShard if its size or checksum is wrong.

    The matrix is a read-only view of the memory-mapped file (the mapping lives as long as the
    array or a view of it): reading a shard costs no copy, and pages the process no longer
    references leave its memory when the array goes.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < _HEADER.size + _CHECKSUM_BYTES:
            _parse_header(handle.read(_HEADER.size), path)  # a truncated header says so
            raise CorruptShard(f"{size} bytes, shorter than a header and checksum (truncated?)")
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    try:
        dim, count = _parse_header(bytes(view[: _HEADER.size]), path)
        expected = _HEADER.size + count * _HASH_BYTES + count * dim * 4 + _CHECKSUM_BYTES
        if size != expected:
            raise CorruptShard(f"{size} bytes, expected {expected} (truncated?)")
        body_end = size - _CHECKSUM_BYTES
        digest = hashlib.blake2b(digest_size=_CHECKSUM_BYTES)
        for start in range(0, body_end, _CHECKSUM_BLOCK):
            digest.update(view[start : min(start + _CHECKSUM_BLOCK, body_end)])
        if digest.digest() != bytes(view[body_end:]):
            raise CorruptShard("checksum mismatch")
        table = bytes(view[_HEADER.size : _HEADER.size + count * _HASH_BYTES])
    finally:
        view.release()
    hashes = [table[i * _HASH_BYTES : (i + 1) * _HASH_BYTES] for i in range(count)]
    start = _HEADER.size + count * _HASH_BYTES
    matrix = np.frombuffer(mapped, dtype="<f4", offset=start, count=count * dim).reshape(count, dim)
    return hashes, matrix


def _read_header(path: Path) -> tuple[int, int]:
    with path.open("rb") as handle:
        return _parse_header(handle.read(_HEADER.size), path)


def _read_hashes(path: Path) -> bytes:
    """A shard's text hashes, packed."""
    with path.open("rb") as handle:
        _, count = _parse_header(handle.read(_HEADER.size), path)
        raw = handle.read(count * _HASH_BYTES)
    if len(raw) != count * _HASH_BYTES:
        raise CorruptShard("truncated hash table")
    return raw


def _rows_of(table: bytes, wanted: set[bytes]) -> list[tuple[int, bytes]]:
    """(row, hash) of the packed hashes in ``wanted``: matched on their first 8 bytes in numpy,
    then each candidate compared whole (no bytes object per cached text)."""
    if not wanted or not table:
        return []
    keys = np.frombuffer(table, dtype="<u8")[:: _HASH_BYTES // 8]  # a view: each hash's first 8 bytes
    wanted_keys = np.frombuffer(b"".join(digest[:8] for digest in wanted), dtype="<u8")
    found = []
    for row in np.flatnonzero(np.isin(keys, wanted_keys)).tolist():
        digest = table[row * _HASH_BYTES : (row + 1) * _HASH_BYTES]
        if digest in wanted:
            found.append((row, digest))
    return found


def _parse_header(header: bytes, path: Path) -> tuple[int, int]:
    if len(header) != _HEADER.size:
        raise CorruptShard(f"{path.name}: truncated header")
    magic, version, _, dim, count = _HEADER.unpack(header)
    if magic != _MAGIC or version != _VERSION:
        raise CorruptShard(f"{path.name}: not an embsel cache shard (version {version})")
    return dim, count


class CachedEncoder:
    """A candidate whose ``encode`` answers from the cache and encodes only the misses.

    When every text misses, the wrapped model encodes exactly the list it was given (the same
    call as without a cache), so a cold run returns what an uncached run returns; a warm run
    returns those same stored float32 values.
    """

    def __init__(self, inner: EmbeddingModel, cache: EmbeddingCache) -> None:
        self._inner = inner
        self._cache = cache
        self._model_key: str | None = None
        self._released = False  # memory handed back to the OS before the first miss is encoded
        self.hits = 0
        self.misses = 0

    @property
    def inner(self) -> EmbeddingModel:
        """The uncached model (e.g. to time real encoding)."""
        return self._inner

    @property
    def model_key(self) -> str:
        if self._model_key is None:
            self._model_key = cache_model_key(self._inner.identity, self._inner.source)
        return self._model_key

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        from embsel_mlflow.models.base import as_float32

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        texts = list(texts)
        hashes = [text_hash(text) for text in texts]
        found = self._cache.get(self.model_key, role, hashes)
        missing = [i for i, digest in enumerate(hashes) if digest not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if not missing:
            return _stack([found[digest] for digest in hashes], self.embedding_dim)
        self._release_before_encoding()
        if len(missing) == len(texts):
            embeddings = as_float32(
                self._inner.encode(texts, role=role, show_progress=show_progress), len(texts)
            )
            self._store(role, hashes, embeddings)
            # A text given twice was encoded twice, in batches padded differently (float noise in
            # the last bits); return the stored row for every copy, so a warm run is bit-identical.
            first = {digest: row for row, digest in reversed(list(enumerate(hashes)))}
            if len(first) < len(hashes):
                embeddings = embeddings[[first[digest] for digest in hashes]]
            return embeddings
        first_rows = {hashes[i]: i for i in reversed(missing)}  # one encoding per distinct text
        new_texts = [texts[i] for i in first_rows.values()]
        new = as_float32(
            self._inner.encode(new_texts, role=role, show_progress=show_progress), len(new_texts)
        )
        found.update(zip(first_rows, new, strict=True))
        self._store(role, list(first_rows), new)
        return _stack([found[digest] for digest in hashes], new.shape[1])

    def _release_before_encoding(self) -> None:
        """Once: the encoding peak starts from the floor (a run answered from the cache never pays it)."""
        if not self._released:
            from embsel_mlflow.models.memory import release_memory_before_encoding

            release_memory_before_encoding()
            self._released = True

    def _store(self, role: str | None, hashes: list[bytes], embeddings: np.ndarray) -> None:
        unique = {digest: row for row, digest in reversed(list(enumerate(hashes)))}  # first copy
        rows = list(unique.values())
        try:
            self._cache.put(self.model_key, role, list(unique), embeddings[rows])
        except OSError as err:  # a full or read-only disk must not fail the evaluation
            log.warning("embedding cache: could not store %d embeddings: %s", len(rows), err)

    def for_dataset(self, data: TaskData) -> Any:
        ready = self._inner.for_dataset(data)
        return self if ready is self._inner else CachedEncoder(ready, self._cache)

    @property
    def registrable(self) -> bool:
        return self._inner.registrable

    @property
    def source(self) -> ResolvedModel:
        return self._inner.source

    @property
    def device(self) -> str:
        return self._inner.device

    @property
    def embedding_dim(self) -> int:
        if not getattr(self._inner, "loaded", True):  # a lazy model: its shards know, no need to load it
            dim = self._cache.dim(self.model_key)
            if dim is not None:
                return dim
        return self._inner.embedding_dim

    @property
    def num_parameters(self) -> int:
        return self._inner.num_parameters

    @property
    def identity(self) -> dict[str, Any]:
        return self._inner.identity

    @property
    def disk_size_bytes(self) -> int | None:
        return self._inner.disk_size_bytes

    def __getattr__(self, name: str) -> Any:
        # Kind-specific extras (model, tokenizer, config, tokens_used, ...) come from the model.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def cached_layer(model: Any) -> CachedEncoder | None:
    """The ``CachedEncoder`` inside a built candidate (under a stored-embedding variant), or None."""
    while model is not None and not isinstance(model, CachedEncoder):
        model = getattr(model, "_base", None)  # StoredEmbeddingEncoder wraps the cached model
    return model


def _stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32, copy=False) if rows else np.empty((0, dim), np.float32)


def cache_counts(model: Any) -> tuple[int, int]:
    """(hits, misses) so far of a cached candidate; (0, 0) for an uncached one."""
    return (model.hits, model.misses) if isinstance(model, CachedEncoder) else (0, 0)


def cache_metrics(model: Any, before: tuple[int, int]) -> dict[str, float]:
    """``cache_hits`` / ``cache_misses`` (texts) since ``before``; empty for an uncached candidate."""
    if not isinstance(model, CachedEncoder):
        return {}
    hits, misses = cache_counts(model)
    return {"cache_hits": float(hits - before[0]), "cache_misses": float(misses - before[1])}


def cache_model_key(identity: dict[str, Any], source: ResolvedModel) -> str:
    """The model part of cache keys: the identity, with the weights pinned by content when it is not."""
    from embsel_mlflow.models.identity import cache_key
    from embsel_mlflow.models.resolve import HUB, LOCAL

    pinned = dict(identity)
    if pinned.get("sha256") is None:
        if source.origin == LOCAL:
            # A local directory may be overwritten (e.g. by fine-tuning): key on its content.
            pinned["sha256"] = directory_fingerprint(Path(source.path_or_id))
        elif source.origin == HUB and pinned.get("revision") is None:
            pinned["revision"] = _hub_commit(source.path_or_id)
    return cache_key(pinned)


def directory_fingerprint(directory: Path) -> str:
    """sha256 over the names and contents of a model directory's files (memoised across processes
    by path, size and mtime: ``models.resolve.memoised_sha256``)."""
    from embsel_mlflow.models.resolve import memoised_sha256

    files = sorted(p for p in directory.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path, file_digest in zip(files, memoised_sha256(files), strict=True):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + file_digest.encode())
    return digest.hexdigest()


def _hub_commit(repo_id: str) -> str | None:
    """The commit of the locally cached snapshot of a Hub model ('main' may move), or None."""
    from embsel_mlflow.models.base import hub_snapshot

    snapshot = hub_snapshot(repo_id)
    return snapshot.name if snapshot is not None else None
