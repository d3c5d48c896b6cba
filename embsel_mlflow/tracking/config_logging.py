"""Log the resolved config: every leaf as a param, plus config.yaml and overrides.yaml."""

from __future__ import annotations

from typing import Any

from embsel_mlflow.tracking.params import config_to_params, mask_override, mask_secrets
from embsel_mlflow.tracking.run_logger import RunLogger


def log_config(run: RunLogger, cfg: Any, overrides: list[str]) -> None:
    """``cfg`` is the composed DictConfig (without the ``hydra`` node). Secrets are masked."""
    from omegaconf import OmegaConf

    run.log_dict({"overrides": [mask_override(o) for o in overrides]}, "overrides.yaml")
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run.log_text(OmegaConf.to_yaml(OmegaConf.create(mask_secrets(resolved))), "config.yaml")
    params, truncated = config_to_params(resolved)
    run.log_params(params)
    if truncated:
        run.set_tags({"embsel.truncated_params": ",".join(truncated)})
