"""What the media baselines fitted per dataset share (``image_features``, ``audio_features``).

The media counterpart of LSA: unfitted until :meth:`FittedMediaModel.for_dataset`, which fits on
the items the task family names (``fit_texts``, never a label). The fit's key is the kind's
settings and the content of those items: a fit is plain arrays (npz, no pickle) kept under
``<models_dir>/<kind>/<key>.npz`` (the same items and settings are never fitted twice) and is
what the served model loads (``save_serving`` writes it beside a settings file). A saved fit
(:meth:`from_saved`, a logged model's ``weights/``) is used as it is on every dataset.

A subclass names its kind, files and words (class attributes) and implements the hooks: its
settings, which items it fits on, how a fit is computed, read and written, and what it serves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from embsel_mlflow.errors import ModelError, first_line
from embsel_mlflow.models.base import FITTED
from embsel_mlflow.models.media_model import MediaModel
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media.items import Media

ForwardT = TypeVar("ForwardT")
SettingsT = TypeVar("SettingsT")
# What reading a kept fit may raise: then it is refitted.
FIT_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class FittedMediaModel(MediaModel, Generic[ForwardT, SettingsT]):
    """A media model fitted per dataset; ``forward`` is None until fitted (or loaded from a saved fit)."""

    device = "cpu"
    kind: ClassVar[str]  # model.kind, and the directory of kept fits under models_dir
    fit_name: ClassVar[str]  # the fit in messages: "cannot load the <fit_name> fit in ..."
    item_noun: ClassVar[str]  # what it fits on, in ``fitted_on``: "clips", "images"
    settings_file: ClassVar[str]  # the settings save_serving writes beside the fit
    fit_file: ClassVar[str]  # the fit save_serving writes
    # What from_saved turns into a one-line ModelError
    saved_load_errors: ClassVar[tuple[type[BaseException], ...]] = FIT_READ_ERRORS
    non_parameters: ClassVar[tuple[str, ...]] = ()  # fit arrays num_parameters leaves out
    forward: ForwardT | None
    _settings: SettingsT

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        models_dir: Path | None = None,
        forward: ForwardT | None = None,
        fitted_on: str = "",
        key: str | None = None,
        saved: bool = False,
    ) -> None:
        self._cfg = cfg
        self._settings = self.checked_settings(cfg)
        self._models_dir = models_dir
        self.forward = forward
        self._fitted_on = fitted_on
        self._key = key
        self._saved = saved  # loaded from a saved fit: for_dataset keeps it

    # -- hooks -------------------------------------------------------------------------------

    @classmethod
    def checked_settings(cls, cfg: ModelConfig) -> SettingsT:
        """The kind's config section of ``cfg`` (its defaults when unset), refused if unusable."""
        raise NotImplementedError

    @classmethod
    def load_saved(
        cls, cfg: ModelConfig, directory: Path, section: dict[str, Any]
    ) -> tuple[ModelConfig, Any]:
        """``cfg`` with the saved settings ``section``, and the fit saved in ``directory``."""
        raise NotImplementedError

    @staticmethod
    def saved_load_reason(err: BaseException) -> str:
        """How a from_saved failure is worded after 'cannot load the ... fit in <directory>: '."""
        return first_line(err)

    def fit_items(self, data: TaskData) -> tuple[list[Media], str]:
        """The distinct items the model is fitted on for ``data``, and what they are."""
        raise NotImplementedError

    def item_key(self, item: Media) -> bytes:
        """One fit item's part of the fit's key (its content, never its path)."""
        raise NotImplementedError

    def key_settings(self) -> dict[str, Any]:
        """The settings part of the fit's key."""
        raise NotImplementedError

    def forward_settings(self) -> dict[str, Any]:
        """What the forward module reads; by default the kind's settings and ``normalize``."""
        return self.settings_section()

    def fit(self, items: list[Media], settings: dict[str, Any], name: str, what: str) -> ForwardT:
        """A fit on ``items`` of dataset ``name`` (``what`` they are, for messages)."""
        raise NotImplementedError

    def read_fit(self, path: Path, settings: dict[str, Any]) -> ForwardT:
        """The fit kept at ``path`` (raises one of FIT_READ_ERRORS when it cannot be read)."""
        raise NotImplementedError

    def write_fit(self, forward: ForwardT, path: Path) -> None:
        """Keep ``forward`` at ``path``, atomically (a concurrent twin may write the same file)."""
        raise NotImplementedError

    def save_fit(self, forward: ForwardT, directory: Path) -> dict[str, Any]:
        """Write ``forward`` under ``directory``; the serving settings (see ``media_model``)."""
        raise NotImplementedError

    def source_name(self) -> str:
        """What computes the embeddings, for ``source``."""
        raise NotImplementedError

    def unfitted_dim(self) -> int:
        """The embedding size the settings ask for (before a fit says what it is)."""
        raise NotImplementedError

    def fit_arrays(self, forward: ForwardT) -> dict[str, np.ndarray]:
        """The arrays of the fit ``forward``, by name."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    @classmethod
    def from_saved(cls, cfg: ModelConfig, directory: Path) -> Self:
        """The fit ``save_serving`` wrote in ``directory`` (its own settings win over ``cfg``'s)."""
        try:
            section = json.loads((directory / cls.settings_file).read_text(encoding="utf-8"))
            cfg, forward = cls.load_saved(cfg, directory, section)
        except cls.saved_load_errors as err:
            raise ModelError(
                f"cannot load the {cls.fit_name} fit in {directory}: {cls.saved_load_reason(err)}"
            ) from err
        key = hashlib.sha256((directory / cls.fit_file).read_bytes()).hexdigest()
        return cls(cfg, forward=forward, fitted_on=f"saved fit {directory}", key=key, saved=True)

    @classmethod
    def saved_fit_dir(cls, name_or_path: str | None) -> Path | None:
        """``name_or_path`` as a directory holding a saved fit, or None (then it is fitted per dataset)."""
        if not name_or_path:
            return None
        directory = Path(name_or_path).expanduser()
        if (directory / cls.fit_file).is_file() and (directory / cls.settings_file).is_file():
            return directory
        return None

    @property
    def registrable(self) -> bool:  # type: ignore[override]
        """Once fitted: the fit is what gets logged and served."""
        return self.forward is not None

    def settings_section(self) -> dict[str, Any]:
        """The kind's settings and ``normalize``: the settings file save_serving writes."""
        return {**dataclasses.asdict(self._settings), "normalize": bool(self._cfg.normalize)}  # type: ignore[call-overload]

    def for_dataset(self, data: TaskData) -> Self:
        """A copy fitted on the items ``data``'s family names (:meth:`fit_items`); a saved fit as it is."""
        if self._saved:
            return self
        items, what = self.fit_items(data)
        settings = self.forward_settings()
        digest = hashlib.sha256(json.dumps(self.key_settings(), sort_keys=True).encode())
        for item in items:
            digest.update(self.item_key(item))
        key = digest.hexdigest()
        path = self._models_dir / self.kind / f"{key}.npz" if self._models_dir is not None else None
        forward = self._load_fit(path, settings) if path is not None and path.is_file() else None
        if forward is None:
            forward = self.fit(items, settings, data.name, what)
            if path is not None:
                try:
                    self.write_fit(forward, path)
                except OSError as err:  # a read-only or full disk only costs a refit next time
                    self._log.warning("could not keep the %s fit in %s: %s", self.fit_name, path, err)
        return type(self)(
            self._cfg,
            models_dir=self._models_dir,
            forward=forward,
            fitted_on=f"{data.name} {what} ({len(items)} {self.item_noun})",
            key=key,
        )

    def _load_fit(self, path: Path, settings: dict[str, Any]) -> ForwardT | None:
        """The fit kept at ``path``, or None if it cannot be read (then it is refitted)."""
        try:
            return self.read_fit(path, settings)
        except FIT_READ_ERRORS as err:
            self._log.warning("ignoring unreadable %s fit %s: %s", self.fit_name, path, err)
            return None

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)  # the kind's own logger, as before

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        if self.forward is None:
            raise ModelError(
                f"{self.fit_name} model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first"
            )
        return super().encode(texts, role=role, show_progress=show_progress)

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """The fit (npz) and its settings under ``directory``; the serving settings."""
        if self.forward is None:
            raise ModelError(f"{self.fit_name} model '{self._cfg.name}' is not fitted: nothing to save")
        directory = Path(directory)
        serving = self.save_fit(self.forward, directory)
        (directory / self.settings_file).write_text(
            json.dumps(self.settings_section(), indent=2), encoding="utf-8"
        )
        return serving

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'digits train split (900 images)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel(self.source_name(), FITTED, self._key)

    @property
    def embedding_dim(self) -> int:
        forward: Any = self.forward
        return int(forward.embedding_dim) if forward is not None else self.unfitted_dim()

    @property
    def num_parameters(self) -> int:
        """The fitted arrays' values (0 before fitting)."""
        if self.forward is None:
            return 0
        arrays = self.fit_arrays(self.forward)
        return int(sum(array.size for name, array in arrays.items() if name not in self.non_parameters))

    @property
    def disk_size_bytes(self) -> int | None:
        if self.forward is None:
            return None
        return int(sum(array.nbytes for array in self.fit_arrays(self.forward).values()))

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._settings)
        identity["fitted_on"] = self._fitted_on
        return identity
