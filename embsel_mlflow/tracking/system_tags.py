"""Tags that make a run reproducible: code version, package versions and hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

# Packages whose versions change the numbers a run reports.
TRACKED_PACKAGES = (
    "embsel-mlflow",
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


def git_tags(cwd: str | None = None) -> dict[str, str]:
    """Commit and dirty flag of the git checkout at ``cwd``, if there is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"embsel.git_commit": commit, "embsel.git_dirty": str(bool(status.strip())).lower()}


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
    if torch is not None and torch.cuda.is_available():
        tags["hardware.gpu"] = torch.cuda.get_device_name(0)
        tags["hardware.gpu_count"] = str(torch.cuda.device_count())
    return tags
