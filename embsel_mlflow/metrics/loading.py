"""Load HF ``evaluate`` modules: our built-in metrics by path, anything else by path or name.

``evaluate.load("accuracy")`` needs the Hugging Face Hub, so the built-in metrics ship as
module scripts inside this package and are always loaded by their file path.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    import evaluate

BUILTIN_METRICS: tuple[str, ...] = ("retrieval", "sts", "pair_classification", "classification", "clustering")
_MODULES_DIR = Path(__file__).resolve().parent / "modules"


def builtin_metric_path(name: str) -> Path:
    """The module script of a built-in metric, e.g. ``.../modules/sts/sts.py``."""
    if name not in BUILTIN_METRICS:
        raise ConfigError(f"unknown built-in metric '{name}': choose one of {', '.join(BUILTIN_METRICS)}")
    return _MODULES_DIR / name / f"{name}.py"


def load_metric(name_or_path: str) -> evaluate.EvaluationModule:
    """A fresh evaluate module for a built-in name, a local script/dir path, or a Hub name.

    Each call returns a new instance (no shared buffers between callers); the module class is
    imported once per process and path.
    """
    module_class = _module_class(_resolve(name_or_path))
    module = module_class(keep_in_memory=True)
    module.download_and_prepare()
    return module


def _resolve(name_or_path: str) -> str:
    if name_or_path in BUILTIN_METRICS:
        return str(builtin_metric_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path.resolve())
    if _looks_like_path(name_or_path):
        raise ConfigError(
            f"evaluate module path '{name_or_path}' does not exist: give a module script (.py) "
            "or a directory holding <dir-name>.py"
        )
    return name_or_path  # a Hub module name


def _looks_like_path(text: str) -> bool:
    return (
        text.endswith(".py")
        or text.startswith((".", "~", os.sep))
        or text.count("/") > 1
        or (os.altsep is not None and os.altsep in text)
    )


@functools.cache
def _module_class(resolved: str) -> type[evaluate.EvaluationModule]:
    """Import a module once: evaluate copies the script into HF_MODULES_CACHE on load.

    ``import evaluate`` imports transformers and ``transformers.pipelines`` (and so torch), and
    scipy.stats, for its evaluators, which we never use: seconds of a warm run. Unless something
    imported them already, those imports are made to fail while evaluate is imported, so it
    marks them unavailable to its evaluators only (it guards each import); a transformer
    candidate or a metric imports them as usual later.
    """
    import sys

    blocked = (
        []
        if "evaluate" in sys.modules
        else [
            name
            for name in ("transformers", "transformers.pipelines", "scipy.stats")
            if name not in sys.modules
        ]
    )
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it fails at once
    try:
        import evaluate
    finally:
        for name in blocked:
            del sys.modules[name]

    try:
        module = evaluate.load(resolved, keep_in_memory=True)
    except (FileNotFoundError, ConnectionError, OSError) as exc:
        if Path(resolved).exists():
            raise
        raise ConfigError(
            f"cannot load evaluate module '{resolved}' (offline?): ship it as a local module and set its path"
        ) from exc
    return type(module)
