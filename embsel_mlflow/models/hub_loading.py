"""The one way a model is fetched: a local directory or a Hub id, online or from the local cache only.

:func:`hub_load` resolves ``model.name_or_path`` (``models.resolve``), refuses a local directory
that holds no model, and decides whether the Hub may be asked: offline (asked for, or the Hub
does not answer) the local Hugging Face cache only, which fails in milliseconds instead of a
minute of retries when the model is not cached. Its ``kwargs`` go to ``from_pretrained``; loading
runs inside its :meth:`HubLoad.loading`, which words the loaders' failures as one-line
ModelErrors and keeps transformers' loading bars off the console. The text encoder, CLIP and
CLAP load this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.model import check_remote_code_switch
from embsel_mlflow.errors import ModelError, first_line
from embsel_mlflow.models.resolve import (
    HUB,
    ResolvedModel,
    hub_offline_requested,
    probe_hub,
    resolve_model_source,
)

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig


@dataclass(frozen=True)
class HubLoad:
    """Where a model is loaded from, and how (see the module docstring)."""

    source: ResolvedModel
    local_only: bool  # the local Hugging Face cache only
    kwargs: dict[str, Any]  # revision, token, trust_remote_code, local_files_only for from_pretrained

    @contextmanager
    def loading(self) -> Iterator[None]:
        """The loaders' failures as one-line ModelErrors, and no transformers loading bars."""
        with as_model_error(self.source, self.local_only), no_loading_bars():
            yield


def hub_load(cfg: ModelConfig) -> HubLoad:
    """Resolve the model ``cfg`` names, check a local directory, and decide online or offline.

    ``model.trust_remote_code`` is the only way remote code is allowed (also from a notebook,
    where no preflight ran): a ``trust_remote_code`` inside ``model_kwargs`` is refused.
    """
    source = checked_source(cfg)
    local_only = source.origin == HUB and (
        hub_offline_requested() or not probe_hub(source.path_or_id, cfg.revision, cfg.token)
    )
    kwargs: dict[str, Any] = {
        # A revision names a Hub commit; it means nothing for a local directory.
        "revision": cfg.revision if source.origin == HUB else None,
        "token": cfg.token,
        "trust_remote_code": cfg.trust_remote_code,
        "local_files_only": local_only,
    }
    return HubLoad(source, local_only, kwargs)


def checked_source(cfg: ModelConfig) -> ResolvedModel:
    """Where the model ``cfg`` names is (no network, nothing loaded): a local directory that holds a
    model, a verified offline copy, or a Hub id. Remote code is refused unless ``model.trust_remote_code``."""
    check_remote_code_switch(cfg)
    source = resolve_model_source(cfg)
    if source.origin != HUB:
        check_model_dir(Path(source.path_or_id))
    return source


@contextmanager
def no_loading_bars() -> Iterator[None]:
    """No transformers "Loading weights" progress bar: the console holds the tool's own progress."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def bars_off_terminal(module: Any) -> Iterator[None]:
    """``module``'s own ``tqdm`` (a module global its library offers no switch for) disabled while
    the call runs, when stderr is not a terminal; put back after."""
    import sys
    from functools import partial

    from tqdm import tqdm

    bar = getattr(module, "tqdm", None)
    swap = bar is not None and not getattr(sys.stderr, "isatty", lambda: False)()
    if swap:
        module.tqdm = partial(tqdm, disable=True)
    try:
        yield
    finally:
        if swap:
            module.tqdm = bar


def check_model_dir(path: Path) -> None:
    """Refuse a directory that holds no model before the loaders fail less clearly."""
    if not any((path / name).is_file() for name in ("modules.json", "config.json")):
        raise ModelError(
            f"{path} holds no model: expected config.json (transformers) or modules.json "
            "(sentence-transformers); fix model.name_or_path"
        )


@contextmanager
def as_model_error(source: ResolvedModel, local_only: bool) -> Iterator[None]:
    """Turn the loaders' exceptions about missing/unloadable models into one-line ModelErrors."""
    from huggingface_hub.errors import HFValidationError
    from safetensors import SafetensorError

    what = f"model '{source.path_or_id}'"
    try:
        yield
    except SafetensorError as err:
        raise ModelError(
            f"cannot load {what}: a .safetensors weights file is corrupt or truncated ({first_line(err)}); "
            "download or save the model again"
        ) from err
    except (OSError, HFValidationError) as err:
        reason = first_line(err)
        if source.origin == HUB and local_only:
            raise ModelError(
                f"cannot load {what} from the Hugging Face Hub (offline or unknown id); download it where "
                "you have network and set model.name_or_path=/path/to/local/copy"
            ) from err
        hint = ""
        if "safetensors" in reason:
            hint = "; to allow pickled .bin weights set model.model_kwargs.use_safetensors=false"
        if source.origin == HUB:
            raise ModelError(f"cannot load {what} from the Hugging Face Hub: {reason}{hint}") from err
        raise ModelError(f"cannot load the model in {source.path_or_id}: {reason}{hint}") from err
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ModelError(
                f"{what} needs custom code from its repository; set model.trust_remote_code=true only if "
                "you trust that code"
            ) from err
        if "Unrecognized model" in str(err):  # transformers: config.json without a known model_type
            raise ModelError(f"cannot load {what}: {first_line(err)}") from err
        raise
