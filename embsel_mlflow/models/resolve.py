"""Where a model's files come from: a local directory, a pinned offline package, or the Hub."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ModelError

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig, OfflineCopyConfig

LOCAL = "local"
OFFLINE_PACKAGE = "offline_package"
HUB = "hub"

_HASH_CHUNK = 1 << 20  # 1 MiB: hash large weight files without reading them into memory
# A single request with a short timeout decides whether the Hub is reachable: without it an
# offline machine spends about a minute in huggingface_hub's retry backoff before failing.
_HUB_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ResolvedModel:
    """The concrete source a model is loaded from (logged as provenance)."""

    path_or_id: str  # a local directory, or a Hub repo id
    origin: str  # "local" | "offline_package" | "hub"
    sha256: str | None = None  # verified weights hash (offline packages only)


def resolve_model_source(cfg: ModelConfig) -> ResolvedModel:
    """Resolve ``cfg`` to a local directory, a verified offline copy, or a Hub id (in that order)."""
    local = Path(cfg.name_or_path).expanduser()
    if local.is_symlink() and not local.exists():
        raise ModelError(
            f"model.name_or_path={cfg.name_or_path!r} is a broken symlink or a symlink loop; "
            "point it at the model directory itself"
        )
    if local.is_dir():
        return ResolvedModel(str(Path(cfg.name_or_path).expanduser().resolve()), LOCAL)
    if cfg.offline is not None and packages(cfg.offline, cfg.name_or_path, cfg.revision):
        offline_dir = _offline_package_dir(cfg.offline.package)
        if offline_dir is not None:
            digest = verify_sha256(offline_dir / cfg.offline.weights_file, cfg.offline.sha256)
            return ResolvedModel(str(offline_dir), OFFLINE_PACKAGE, digest)
    _check_hub_id(cfg.name_or_path)
    return ResolvedModel(cfg.name_or_path, HUB)


def packages(offline: OfflineCopyConfig, name_or_path: str, revision: str | None) -> bool:
    """Whether the offline copy is the model ``name_or_path`` at ``revision`` names.

    Hub ids are case-insensitive; a revision the package does not ship is another model.
    """
    if name_or_path.strip().casefold() != str(offline.repo_id).strip().casefold():
        return False
    return revision is None or revision == offline.revision


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


SHA256_MEMO = "sha256.json"  # in the cache dir: {path: [size, mtime_ns, sha256]}
_MEMO: dict[str, tuple[int, int, str]] = {}  # this process's view of the memo file


def memoised_sha256(paths: Sequence[Path]) -> list[str]:
    """Hex sha256 of each file, hashed only when its (path, size, mtime_ns) is not memoised.

    The memo is shared by every process (``<cache dir>/sha256.json``, ``$EMBSEL_CACHE_DIR``),
    so a warm run does not re-read hundreds of MiB of weights to name the model it need not load.
    A rewritten or touched file has another size or mtime and is hashed again. The memo is
    written to a temporary file and renamed into place; a lost race only costs a re-hash.
    """
    from embsel_mlflow.models.cache_dir import default_cache_dir

    memo_path = default_cache_dir() / SHA256_MEMO
    if not _MEMO:
        _MEMO.update(_read_memo(memo_path))
    digests: list[str] = []
    changed = False
    for path in paths:
        stat = path.stat()
        key = str(path.resolve())
        known = _MEMO.get(key)
        if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
            known = (stat.st_size, stat.st_mtime_ns, sha256_file(path))
            _MEMO[key] = known
            changed = True
        digests.append(known[2])
    if changed:
        _write_memo(memo_path)
    return digests


def _read_memo(path: Path) -> dict[str, tuple[int, int, str]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(key): (int(size), int(mtime), str(digest)) for key, (size, mtime, digest) in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):  # absent or damaged: hash again
        return {}


def _write_memo(path: Path) -> None:
    """Merge with what other processes memoised meanwhile, drop files that are gone, rename into place."""
    merged = {**_read_memo(path), **_MEMO}
    live = {key: entry for key, entry in merged.items() if os.path.isfile(key)}
    tmp = path.with_name(f".{SHA256_MEMO}.{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(live, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only cache dir: hashing again next time is all it costs
        pass
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def verify_sha256(path: Path, expected: str) -> str:
    """Return the file's sha256, or raise ModelError if it is missing or differs from ``expected``."""
    if not path.is_file():
        raise ModelError(f"offline model weights {path} not found; reinstall the package that ships them")
    actual = memoised_sha256([path])[0]
    if actual != expected.strip().lower():
        raise ModelError(
            f"refusing offline model weights {path}: expected sha256 {expected}, got {actual}; "
            "reinstall the package or fix model.offline.sha256"
        )
    return actual


def hub_offline_requested() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE).

    Read from the environment at call time: huggingface_hub reads it once at import.
    """
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().upper()
    return env in {"1", "ON", "YES", "TRUE"} or constants.HF_HUB_OFFLINE


def probe_hub(repo_id: str, revision: str | None, token: str | None) -> bool:
    """Return whether the Hub answers for ``repo_id`` (one request, no retries).

    Raises ModelError when the Hub answers that the repo or revision does not exist.
    Returns False when the Hub cannot be reached, so the caller can use the local cache only.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        GatedRepoError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = hf_hub_url(repo_id, "config.json", revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=_HUB_PROBE_TIMEOUT_S)
    except GatedRepoError as err:
        raise ModelError(
            f"model '{repo_id}' is gated on the Hugging Face Hub; accept its terms and set model.token"
        ) from err
    except RepositoryNotFoundError as err:
        raise ModelError(
            f"model '{repo_id}' was not found on the Hugging Face Hub (unknown id, or private: set "
            "model.token); check model.name_or_path"
        ) from err
    except RevisionNotFoundError as err:
        raise ModelError(f"model '{repo_id}' has no revision '{revision}'; check model.revision") from err
    except RemoteEntryNotFoundError:
        return True  # the repo exists (e.g. no config.json at its root); let the loader decide
    except Exception:
        # Any other failure (DNS, refused connection, timeout, 5xx, offline mode) means the Hub
        # cannot confirm the model now; loading then falls back to the local cache.
        return False
    return True


def _offline_package_dir(package: str) -> Path | None:
    """The model directory shipped by ``package``, or None when the package is not installed."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name != package:  # the package exists but is broken: say so, don't silently skip it
            raise ModelError(f"offline model package '{package}' cannot be imported: {err}") from err
        return None
    return Path(module.get_model_path())


def _check_hub_id(name_or_path: str) -> None:
    """Refuse values that are neither an existing directory nor a syntactically valid Hub id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    looks_like_path = name_or_path.startswith(("/", ".", "~")) or "\\" in name_or_path
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        looks_like_path = True
    if looks_like_path:
        raise ModelError(
            f"model.name_or_path='{name_or_path}' is neither an existing local directory nor a valid "
            "Hugging Face Hub id; fix the path or the id"
        )
