"""Hydra registration: structured-config schemas, resolvers and the config directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embsel_mlflow.config import (
    EvaluateJobConfig,
    MonitorJobConfig,
    ProfileJobConfig,
    SelectJobConfig,
    TrainJobConfig,
)
from embsel_mlflow.config.jobs import EmbedJobConfig
from embsel_mlflow.config.paths import config_dir, demo_data_dir

# Primary config name -> schema. Each conf/<name>.yaml lists "<name>_schema" first in its
# defaults, so every key it (and every group option) sets is type-checked at compose time.
SCHEMAS: dict[str, type] = {
    "evaluate": EvaluateJobConfig,
    "select": SelectJobConfig,
    "profile": ProfileJobConfig,
    "monitor": MonitorJobConfig,
    "train": TrainJobConfig,
    "embed": EmbedJobConfig,
}
# Group -> the group whose options it can select several of at once (``candidates=[a,b]``):
# each option of the source group is offered under its own key, e.g. candidates.minilm.
MULTI_SELECT_GROUPS: dict[str, str] = {"candidates": "model", "datasets": "data", "windows": "data"}


def register_resolvers() -> None:
    """Register the OmegaConf resolvers our configs use (idempotent)."""
    from omegaconf import OmegaConf

    from embsel_mlflow.config.steps import step_summary

    if not OmegaConf.has_resolver("embsel_demo_data"):
        OmegaConf.register_new_resolver("embsel_demo_data", lambda: str(demo_data_dir()))
    if not OmegaConf.has_resolver("embsel_step_summary"):
        OmegaConf.register_new_resolver("embsel_step_summary", step_summary)


def compose_config(step: str, overrides: list[str] | None = None, *, with_hydra: bool = False) -> Any:
    """The composed config (DictConfig) of ``step`` with Hydra ``overrides``, without running anything.

    The same composition ``embsel <step>`` does; handy from Python and in tests. ``with_hydra``
    keeps the ``hydra`` node (sweeper, launcher, callbacks).
    """
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=step):
        return compose(config_name=step, overrides=list(overrides or []), return_hydra_config=with_hydra)


def register_configs(search_dirs: Sequence[Path] = ()) -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent).

    ``search_dirs`` are extra config dirs (``hydra.searchpath``) whose model/data configs can
    be selected as candidates/datasets too.
    """
    from hydra.core.config_store import ConfigStore

    # The sweepers' plugin root (sweeps.plugins) is put on the import path by the app that runs a
    # sweep (jobs.app.run_app) and by the sweep's preflight: config does not import sweeps.
    register_resolvers()
    store = ConfigStore.instance()
    # Converting the dataclasses took 0.1 s of every run's start, and a run registers twice
    # (its up-front check, then Hydra's app): only what the store lacks is stored.
    for name, schema in SCHEMAS.items():
        if f"{name}_schema.yaml" not in store.repo:
            store.store(name=f"{name}_schema", node=schema)
    for group, source in MULTI_SELECT_GROUPS.items():
        for option in group_options(source, search_dirs):
            # A one-line wrapper: option `minilm` of `candidates` is conf/model/minilm.yaml placed
            # at candidates.minilm, so a list of options composes into one dict, one key each.
            store.store(group=group, name=option, node={"defaults": [{f"/{source}@{option}": option}]})


def group_options(group: str, search_dirs: Sequence[Path] = ()) -> list[str]:
    """The options (config names) of a group in the conf/ tree and ``search_dirs``, sorted."""
    roots = [config_dir(), *search_dirs]
    return sorted({path.stem for root in roots for path in (Path(root) / group).glob("*.yaml")})


def searchpath_dirs(overrides: Sequence[str]) -> list[Path]:
    """Local dirs named by a ``hydra.searchpath=[file://dir,...]`` override (pkg:// entries skipped)."""
    dirs: list[Path] = []
    for override in overrides:
        key, sep, value = override.lstrip("+").partition("=")
        if not sep or key != "hydra.searchpath":
            continue
        for item in value.strip("[]").split(","):
            item = item.strip().strip("'\"")
            if item and not item.startswith("pkg://"):
                dirs.append(Path(item.removeprefix("file://")))
    return dirs
