"""The registered task families, by ``data.task`` name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import EvalTask
    from embsel_mlflow.families.base import TaskFamily

# name -> family, in registration order (the built-ins first).
FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily, *, replace: bool = False) -> TaskFamily:
    """Add ``family`` under its name; a second family of the same name needs ``replace=True``."""
    name = str(family.name)
    if name in FAMILIES and not replace:
        raise ConfigError(f"task family {name!r} is already registered ({FAMILIES[name]!r})")
    FAMILIES[name] = family
    return family


def unregister_family(name: str) -> None:
    FAMILIES.pop(str(name), None)


def get_family(name: str, *, dataset: str | None = None) -> TaskFamily:
    """The family called ``name``; a one-line ConfigError naming the known families otherwise."""
    family = FAMILIES.get(str(name))
    if family is None:
        where = f" for dataset '{dataset}'" if dataset is not None else ""
        raise ConfigError(f"unknown task type '{name}'{where}: use one of {', '.join(FAMILIES)}")
    return family


def check_families(config: Any) -> None:
    """Refuse (one line) the first data config inside ``config`` (a typed job config, a mapping of
    datasets, a DataConfig) whose ``task`` no family is registered for."""
    from embsel_mlflow.config import DataConfig
    from embsel_mlflow.config.walk import nodes_of

    for data in nodes_of(config, DataConfig):
        get_family(data.task, dataset=data.name)


def family_of(data: TaskData) -> TaskFamily:
    """The family ``data`` carries, else the one registered under ``data.task``."""
    family = data.family
    if family is None:
        return get_family(data.task, dataset=data.name)
    return family  # type: ignore[return-value]  # data only knows the Family protocol


class _Tasks(Mapping[str, "type[EvalTask]"]):
    """Family name -> its EvalTask class, read live from the registry."""

    def __getitem__(self, name: str) -> type[EvalTask]:
        return FAMILIES[name].task_class

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)


TASKS: Mapping[str, type[EvalTask]] = _Tasks()
