"""Sweep overrides in Hydra's grammar: which keys a sweep varies, and the values to preflight."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def parse_overrides(overrides: list[str]) -> list[Override]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def override_key(override: str) -> str:
    """``+model.pooling=cls`` -> ``model.pooling``; ``data=stsb`` -> ``data``."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def swept_keys(overrides: list[str]) -> list[str]:
    """Keys whose value a sweep varies (``data=a,b``, ``x=range(3)``, ``y=interval(0,1)``)."""
    return [o.key_or_group for o in parse_overrides(overrides) if o.is_sweep_override()]


def preflight_jobs(overrides: list[str]) -> list[list[str]]:
    """Override lists that between them use every value of every enumerable sweep once.

    Composing these catches a misspelled group option or key in any job without composing the
    whole grid (a 10 x 10 sweep needs 10 compositions, not 100). Interval sweeps (Optuna) are
    left out: their values only exist once a trial samples them.
    """
    from hydra.core.override_parser.types import ValueType

    parsed = parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    swept = {
        o.get_key_element(): list(o.sweep_string_iterator())
        for o in parsed
        if o.is_discrete_sweep() and o.value_type != ValueType.GLOB_CHOICE_SWEEP  # globs need the repo
    }
    if not swept:
        return [[line for line in fixed if line]]
    longest = max(len(values) for values in swept.values())
    jobs = []
    for i in range(longest):
        picked = [f"{key}={values[min(i, len(values) - 1)]}" for key, values in swept.items()]
        jobs.append([*(line for line in fixed if line), *picked])
    return jobs


def job_label(job_num: int, job_overrides: list[str], keys: list[str], name: str = "") -> str:
    """A child run's name: ``#<job> <model>@<dataset>`` (``name``, the one naming rule of
    ``tracking.run_naming``) and the values of the other swept keys."""
    varied = [
        o for o in job_overrides if override_key(o) in keys and not (name and _named_by_model_or_data(o))
    ]
    return " ".join(part for part in (f"#{job_num}", name, *varied) if part)


def _named_by_model_or_data(override: str) -> bool:
    """Already in ``<model>@<dataset>``: the model and data groups and their keys."""
    return override_key(override).lstrip("+~").split(".")[0] in ("model", "data")
