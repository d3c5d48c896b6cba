"""Tags that make a run reproducible: code version, package versions and hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Packages whose versions change the numbers a run reports.
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "datasets",
    "evaluate",
    "scikit-learn",
    "numpy",
    "mlflow",
    "hydra-core",
)


def git_tags(cwd: str | Path | None = None) -> dict[str, str]:
    """``commit`` and ``dirty`` of the git checkout containing ``cwd``, or {} outside one."""
    try:
        commit = _git(["rev-parse", "HEAD"], cwd)
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": str(bool(status.strip())).lower()}


def _git(args: list[str], cwd: str | Path | None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def embsel_source_dir() -> Path | None:
    """The checkout embsel runs from when installed editable (or run from source), else None.

    Only a git work tree whose top level holds the package counts: a wheel installed in a
    virtualenv that happens to sit inside another repository must not report that repository.
    """
    import embsel_mlflow

    package_root = Path(embsel_mlflow.__file__).resolve().parent.parent
    try:
        top = _git(["rev-parse", "--show-toplevel"], package_root)
    except (OSError, subprocess.SubprocessError):
        return None
    return package_root if Path(top).resolve() == package_root else None


def provenance_tags() -> dict[str, str]:
    """embsel's version and source commit, and, separately, the working directory's commit."""
    tags: dict[str, str] = {}
    try:
        tags["embsel.version"] = metadata.version("embsel-mlflow")
    except metadata.PackageNotFoundError:
        tags["embsel.version"] = "unknown (not installed)"
    source = embsel_source_dir()
    if source is not None:
        tags.update({f"embsel.source_{k}": v for k, v in git_tags(source).items()})
    tags.update({f"workdir.git_{k}": v for k, v in git_tags(Path.cwd()).items()})
    return tags


def version_tags() -> dict[str, str]:
    tags = {"versions.python": platform.python_version()}
    for package in TRACKED_PACKAGES:
        try:
            tags[f"versions.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return tags


def hardware_tags(device: str | None = None) -> dict[str, str]:
    """CPU/GPU facts; torch is only consulted if it is already imported (it is by then)."""
    tags = {
        "hardware.platform": platform.platform(),
        "hardware.machine": platform.machine(),
        "hardware.cpu_count": str(os.cpu_count() or 0),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        tags["hardware.memory_gb"] = f"{pages * page_size / 2**30:.1f}"
    except (ValueError, OSError, AttributeError):
        pass
    if device:
        tags["hardware.device"] = device
    torch = sys.modules.get("torch")
    if torch is not None:  # a parallel sweep's worker gets cores / workers threads (joblib's loky sets it)
        tags["hardware.torch_threads"] = str(torch.get_num_threads())
    if torch is not None and torch.cuda.is_available():
        tags["hardware.gpu"] = torch.cuda.get_device_name(0)
        tags["hardware.gpu_count"] = str(torch.cuda.device_count())
    return tags
