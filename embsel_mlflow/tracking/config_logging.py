"""Log the resolved config: readable params, plus the full config.yaml and the overrides as typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from embsel_mlflow.tracking.params import config_to_params
from embsel_mlflow.tracking.run_logger import RunLogger
from embsel_mlflow.tracking.secrets import mask_override, mask_secrets

# `seed` and `extra_metrics` apply to every task; the rest each family declares
# (`TaskFamily.evaluation_settings`, `data_settings`).
GENERAL_EVALUATION_KEYS = {"seed", "extra_metrics"}
# data.* settings some families read: logged only when the run's family reads them.
OPTIONAL_DATA_KEYS = ("train_split", "label_template")
MEDIA_DATA_KEYS = ("media", "on_bad_media")  # read by families that embed images or audio
# Console and display settings that do not change a result.
# The offline copy's repo_id and revision say which model it may stand in for: the model's own
# name_or_path and revision, already params.
NOT_PARAMS = (
    "evaluation.show_progress",
    "tracking.tags",
    "tracking.run_name",
    "model.offline.repo_id",
    "model.offline.revision",
)
# Groups that never change a score: the embedding cache is transparent by construction.
NOT_PARAM_GROUPS = ("cache",)
# Inside an evaluation (evaluate, select children) the profile settings only guard the input (and
# describe the data, never the score).
EVALUATION_PROFILE_KEYS = {"allow_modality_mismatch"}


def log_overrides(run: RunLogger, overrides: list[str], artifact_dir: str = "") -> None:
    run.log_dict({"overrides": [mask_override(o) for o in overrides]}, f"{artifact_dir}overrides.yaml")


def log_config(
    run: RunLogger, cfg: Any, overrides: list[str], *, artifact_dir: str = "", with_params: bool = True
) -> None:
    """``cfg`` is the composed DictConfig (without the ``hydra`` node). Secrets are masked.

    ``with_params=False`` logs only the files, under ``artifact_dir`` (e.g. a later invocation of a
    reopened run, whose params are already set and cannot change).
    """
    from omegaconf import OmegaConf

    log_overrides(run, overrides, artifact_dir)
    # a DictConfig converts to a dict (to_container's return type covers ListConfig and leaves too)
    resolved = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    run.log_text(OmegaConf.to_yaml(OmegaConf.create(mask_secrets(resolved))), f"{artifact_dir}config.yaml")
    if not with_params:
        return
    params, truncated = config_to_params(readable_config(resolved))
    run.log_params(params)
    if truncated:
        run.set_tags({"embsel.truncated_params": ",".join(truncated)})


def readable_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that apply to this run, for params: no null or empty leaves, no other task's settings.

    Adds ``task`` at the top of the key space, the first thing to group or filter runs by.
    The full config stays in ``config.yaml``.
    """
    config = _without_empty(resolved) or {}
    data = config.get("data", {})
    task = str(data.get("task", ""))
    if task:
        config = {"task": task, **config}
    family = _family(task)
    if family is not None:
        if "evaluation" in config:
            keep = family.evaluation_settings | GENERAL_EVALUATION_KEYS
            config["evaluation"] = {k: v for k, v in config["evaluation"].items() if k in keep}
        if "splits" in data:
            used = {data.get("eval_split", "test")}
            if "train_split" in family.data_settings:
                used.add(data.get("train_split", "train"))
            data["splits"] = {k: v for k, v in data["splits"].items() if k in used}
        for key in OPTIONAL_DATA_KEYS:
            if key not in family.data_settings:
                data.pop(key, None)
        if family.modalities <= {"text"}:
            for key in MEDIA_DATA_KEYS:
                data.pop(key, None)
    if "select" in config and not config["select"].get("finetune_top_k"):
        config.pop("train", None)  # select trains nothing unless finetune_top_k > 0
    model = config.get("model", {})
    if model.get("kind") == "sentence_transformers":
        model.pop("pooling", None)  # the saved model's own pooling applies
    for dotted in NOT_PARAMS:
        *parents, key = dotted.split(".")
        node: Any = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, Mapping) else None
        if isinstance(node, dict):
            node.pop(key, None)
    for group in NOT_PARAM_GROUPS:
        config.pop(group, None)
    if "evaluation" in config and isinstance(config.get("profile"), Mapping):
        config["profile"] = {k: v for k, v in config["profile"].items() if k in EVALUATION_PROFILE_KEYS}
    return _without_empty(config) or {}


def _family(task: str) -> Any:
    """The registered family called ``task`` (None for none: its settings are all logged)."""
    from embsel_mlflow.families import FAMILIES

    return FAMILIES.get(task)


def _without_empty(value: Any) -> Any:
    """A copy without None leaves and empty dicts/lists (None when nothing is left)."""
    if isinstance(value, Mapping):
        kept = {k: v for k, v in ((k, _without_empty(v)) for k, v in value.items()) if v is not None}
        return kept or None
    if isinstance(value, list | tuple):
        return list(value) or None
    return value
