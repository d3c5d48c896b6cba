"""Load a model or dataset once per process per sweep, keyed by its resolved config.

In a sweep run by the basic launcher every job runs in the same process: without this, a
``-m data=a,b,c`` sweep would load the same model three times. Within one sweep, an object is
reused when the job's config for it is equal to an earlier job's; a new sweep (another parent
run) starts empty, so a file edited between two sweeps is read again. Outside a sweep nothing
is kept. Only the most recent object of each kind is held, so a sweep over many models holds
one at a time (Hydra varies the last override fastest: ``model=a,b data=x,y`` reuses each model).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("embsel.sweep")

_sweep: str | None = None  # the parent run of the sweep this process is serving
_held: dict[str, tuple[str, Any]] = {}  # kind -> (config key, object)
loads: Counter[str] = Counter()  # kind -> how many times it was actually loaded (for tests and logs)


def enter_sweep(parent_run_id: str) -> None:
    """Called at the start of every job of a sweep; a new sweep forgets the previous one's objects."""
    global _sweep
    if parent_run_id != _sweep:
        _held.clear()
        _sweep = parent_run_id


def leave_sweep() -> None:
    global _sweep
    _held.clear()
    _sweep = None


def config_key(cfg: Any) -> str:
    """A stable text key of a (dataclass) config, or a tuple of them: equal configs, equal keys."""
    parts = cfg if isinstance(cfg, tuple) else (cfg,)
    values = [
        dataclasses.asdict(p) if dataclasses.is_dataclass(p) and not isinstance(p, type) else p for p in parts
    ]
    return json.dumps(values, sort_keys=True, default=str)


def shared(kind: str, cfg: Any, load: Callable[[], T]) -> T:
    """``load()``, or the object an earlier job of this sweep loaded from an equal ``cfg``."""
    key = config_key(cfg)
    if _sweep is not None and kind in _held and _held[kind][0] == key:
        log.info("reusing the %s loaded by an earlier job of this sweep", kind)
        return _held[kind][1]
    _held.pop(kind, None)  # free the previous object before loading the next
    obj = load()
    loads[kind] += 1
    if _sweep is not None:
        _held[kind] = (key, obj)
    return obj
