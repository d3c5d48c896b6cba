"""Log an embedding model as an MLflow pyfunc model and register it, and read one back: one path each.

``select`` logs its champion and ``train`` its fine-tuned model through ``log_embedding_model``;
a from_run candidate and a registered model (monitor's ``model_uri``) are read back through
``read_logged_model``. The model is a custom pyfunc (``embedding_pyfunc.py``) over a saved
sentence-transformers (or model2vec) directory, not ``mlflow.sentence_transformers``, which
loads with trust_remote_code=True; an image or audio model (``serving_backend == "media"``)
saves itself (``save_serving``) and is served by its own self-contained forward module
(the contract: ``models/media_model.py``). Requirements are pinned explicitly: inferring them
imports the model again (~8 s). The signature is explicit too, so the input example is stored, never run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ModelError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.config import ModelConfig

PYFUNC_FILE = Path(__file__).with_name("embedding_pyfunc.py")
# The pyfunc's imports of this package's code, logged beside it (MLflow puts them on sys.path):
# the exported backends' forward, and the stored-embedding arithmetic evaluation uses.
FORWARD_FILE = Path(__file__).parents[1] / "models" / "exported_forward.py"
STORED_MATH_FILE = Path(__file__).parents[1] / "models" / "stored_embedding_math.py"
# A media model's pyfunc decodes served images and clips as evaluation does (media_io), and
# embeds them with the forward module its save_serving names (models/<module>.py).
MEDIA_IO_FILE = Path(__file__).parents[1] / "media" / "media_io.py"
MODELS_DIR = Path(__file__).parents[1] / "models"
MEDIA = "media"
INPUT_EXAMPLE = ["A short sentence to embed.", "Another text, one embedding per row."]
REQUIREMENTS = {
    "sentence_transformers": ("sentence-transformers", "transformers", "torch", "safetensors"),
    "model2vec": ("model2vec", "safetensors", "tokenizers"),
}
# What a variant's exported transformer runs on (model.variant.backend), besides the above.
VARIANT_RUNTIMES = {"openvino": ("openvino",), "onnx": ("onnxruntime",)}


def pip_requirements(
    backend: str, variant_backend: str = "torch", packages: tuple[str, ...] | list[str] = ()
) -> list[str]:
    """Exact versions of what the logged model needs (local version tags like +cpu dropped).

    ``packages``: a media model's own requirements (its serving settings' ``requirements``).
    """
    pins = []
    runtime = VARIANT_RUNTIMES.get(variant_backend, ())
    needed = (*REQUIREMENTS.get(backend, ()), *packages, *runtime)
    for package in dict.fromkeys(("mlflow", *needed, "numpy", "pandas")):
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _uncached(model: Any) -> Any:
    """The model behind an embedding cache (``inner``), or the model itself."""
    return getattr(model, "inner", model)


def _saved_weights(model: Any, name: str, weights: Path) -> str:
    """Save the candidate's weights under ``weights``; the pyfunc backend that loads them."""
    inner = _uncached(model)
    if not getattr(inner, "registrable", False):
        raise ModelError(
            f"candidate '{name}' (a {type(inner).__name__}) cannot be logged as an embedding model; "
            "choose a candidate whose kind can be registered (embsel select --help lists the kinds)"
        )
    model_dir = getattr(inner, "model_dir", None)
    if model_dir is not None:  # a model2vec static model: its directory as it is
        shutil.copytree(model_dir, weights)
        return "model2vec"
    st_model = getattr(inner, "model", None)
    if st_model is None or not hasattr(st_model, "save"):
        raise ModelError(f"candidate '{name}' (a {type(inner).__name__}) has no saveable model")
    from embsel_mlflow.models.backends import saveable

    with saveable(st_model, weights):  # as the variant runs (bf16 weights, OpenVINO model, ...)
        st_model.save(str(weights), safe_serialization=True)
    return "sentence_transformers"


def embedding_settings(model: Any, cfg: ModelConfig, name: str, backend: str) -> dict[str, Any]:
    """What the pyfunc needs besides the weights: prompts per role, normalisation, batching."""
    from embsel_mlflow.models.backends import serving_settings

    inner = _uncached(model)
    return {
        "name": name,
        "backend": backend,
        "prompts": {
            "symmetric": cfg.symmetric_prompt,
            "query": inner.prompt("query") if hasattr(inner, "prompt") else cfg.query_prompt,
            "document": inner.prompt("document") if hasattr(inner, "prompt") else cfg.document_prompt,
        },
        "normalize": bool(cfg.normalize),
        "batch_size": int(cfg.batch_size),
        "max_length": cfg.max_seq_length or 512,
        "variant": serving_settings(inner),  # precision, backend, stored embedding format
    }


def save_embedding_model(
    model: Any, name: str, directory: Path, *, cfg: ModelConfig | None = None, input_example: bool = True
) -> Path:
    """Save ``model`` (a loaded candidate, optionally behind the cache) as a pyfunc model directory.

    ``cfg`` is the candidate's model config (default: the model's own ``config``). Returns the
    pyfunc directory (``directory/pyfunc``); ``directory`` also receives the staged weights.
    """

    inner = _uncached(model)
    cfg = cfg if cfg is not None else inner.config
    if getattr(inner, "serving_backend", None) == MEDIA:
        return _save_media_model(inner, name, directory, cfg, input_example=input_example)
    weights = directory / "weights"
    backend = _saved_weights(model, name, weights)
    settings_file = directory / "settings.json"
    settings = embedding_settings(model, cfg, name, backend)
    settings_file.write_text(json.dumps(settings, indent=2))
    return _save_pyfunc(
        directory,
        weights,
        settings_file,
        dim=int(inner.embedding_dim),
        params={"role": "symmetric"},
        code_paths=[FORWARD_FILE, STORED_MATH_FILE],
        input_example=input_example,
        requirements=pip_requirements(backend, settings["variant"].get("backend", "torch")),
    )


def _save_media_model(
    inner: Any, name: str, directory: Path, cfg: ModelConfig, *, input_example: bool
) -> Path:
    """An image/audio model as a pyfunc: its ``save_serving`` weights, its forward module and media_io."""

    if not getattr(inner, "registrable", False):
        raise ModelError(
            f"candidate '{name}' (a {type(inner).__name__}) cannot be logged yet: fit it on a dataset "
            "first (for_dataset)"
        )
    weights = directory / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    serving = dict(inner.save_serving(weights))
    module = str(serving.get("module", ""))
    module_file = MODELS_DIR / f"{module}.py"
    if not module.isidentifier() or not module_file.is_file():
        raise ModelError(f"candidate '{name}': its serving module {module!r} is not a file in {MODELS_DIR}")
    dim = int(inner.embedding_dim)
    modalities = [str(modality) for modality in serving["modalities"]]
    settings = {
        "name": name,
        "backend": MEDIA,
        "kind": serving.get("kind"),
        "prompts": {
            "symmetric": cfg.symmetric_prompt,
            "query": inner.prompt("query") if hasattr(inner, "prompt") else cfg.query_prompt,
            "document": inner.prompt("document") if hasattr(inner, "prompt") else cfg.document_prompt,
        },
        "normalize": bool(cfg.normalize),
        "batch_size": int(cfg.batch_size),
        "max_length": cfg.max_seq_length,
        "dim": dim,
        "serving": serving,
    }
    settings_file = directory / "settings.json"
    settings_file.write_text(json.dumps(settings, indent=2))
    return _save_pyfunc(
        directory,
        weights,
        settings_file,
        dim=dim,
        params={"role": "symmetric", "modality": "auto"},  # inputs: texts, file paths or base64 bytes
        code_paths=[MEDIA_IO_FILE, module_file],
        # the stored example is a text one: only for models that take texts
        input_example=input_example and "text" in modalities,
        requirements=pip_requirements(MEDIA, packages=list(serving.get("requirements", ()))),
    )


def _save_pyfunc(
    directory: Path,
    weights: Path,
    settings_file: Path,
    *,
    dim: int,
    params: dict[str, str],
    code_paths: list[Path],
    input_example: bool,
    requirements: list[str],
) -> Path:
    """The embedding pyfunc under ``directory/pyfunc``: strings in, float32 ``(n, dim)`` out."""
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))]),
        params=ParamSchema([ParamSpec(name, "string", default) for name, default in params.items()]),
    )
    path = directory / "pyfunc"
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(PYFUNC_FILE),
        code_paths=[str(code_path) for code_path in code_paths],
        artifacts={"model": str(weights), "settings": str(settings_file)},
        signature=signature,
        input_example=list(INPUT_EXAMPLE) if input_example else None,
        pip_requirements=requirements,
    )
    return path


def weights_sha256(model: Any, name: str) -> str:
    """The sha256 of ``model``'s own weights, as ``log_embedding_model`` saves them: of its one
    ``model.safetensors`` (as an offline package's weights file is hashed), else of every saved
    weights file's name and sha256. A fine-tuned model's identity carries it, not its base's."""
    from embsel_mlflow.models.resolve import sha256_file

    with tempfile.TemporaryDirectory(prefix="embsel-weights-") as tmp:
        weights = Path(tmp) / "weights"
        inner = _uncached(model)
        if getattr(inner, "serving_backend", None) == MEDIA:  # what _save_media_model logs
            weights.mkdir()
            inner.save_serving(weights)
        else:
            _saved_weights(model, name, weights)
        single = weights / "model.safetensors"
        if single.is_file():
            return sha256_file(single)
        files = sorted(path for path in weights.rglob("*") if path.is_file())
        listing = "\n".join(f"{path.relative_to(weights)} {sha256_file(path)}" for path in files)
        import hashlib

        return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class EmbeddingModelRef:
    """Where ``log_embedding_model`` put a model: its run URI, and its registered version if any."""

    uri: str  # runs:/<run id>/<artifact path>
    registered_name: str | None = None
    version: str | None = None
    model_id: str | None = None  # the model's MLflow logged model (its identity), when it has one

    @property
    def registered_uri(self) -> str | None:
        """``models:/NAME/VERSION`` when the model was registered."""
        return None if self.version is None else f"models:/{self.registered_name}/{self.version}"


def log_embedding_model(
    client: MlflowClient,
    run_id: str,
    model: Any,
    name: str,
    *,
    artifact_path: str = "model",
    cfg: ModelConfig | None = None,
    register: str | None = None,
    alias: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> EmbeddingModelRef:
    """Log ``model`` into run ``run_id`` at ``artifact_path``; with ``register``, register it too.

    ``name``: the candidate's name (kept in the model's settings); ``cfg``: its model config
    (default: the model's own ``config``). The model's logged model (one per identity, as
    ``evaluate`` links it) becomes an output of the run. ``register`` creates that registered
    model if needed and a version linked to the run, with ``tags``, and shows it on that logged
    model (``model_entity.link_model_version``; a server refuses ``model_id`` on a version whose
    source is a run artifact, as the weights are); ``alias`` is set on the new version.
    """
    from mlflow.entities import LoggedModelOutput

    from embsel_mlflow.tracking.model_entity import link_model_version, logged_model_of

    with tempfile.TemporaryDirectory(prefix="embsel-model-") as tmp:
        path = save_embedding_model(model, name, Path(tmp), cfg=cfg)
        client.log_artifacts(run_id, str(path), artifact_path)
    uri = f"runs:/{run_id}/{artifact_path}"
    identity = getattr(model, "identity", None)
    model_id = None
    if isinstance(identity, dict):
        experiment_id = client.get_run(run_id).info.experiment_id
        model_id = logged_model_of(client, experiment_id, identity, source_run_id=run_id)
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
    if not register:
        return EmbeddingModelRef(uri, model_id=model_id)
    version = _register(client, run_id, register, artifact_path=artifact_path, alias=alias, tags=tags)
    if model_id is not None:
        link_model_version(client, model_id, register, version)
    return EmbeddingModelRef(uri, register, version, model_id)


def _register(
    client: MlflowClient,
    run_id: str,
    registered_name: str,
    *,
    artifact_path: str,
    alias: str | None,
    tags: Mapping[str, str] | None,
) -> str:
    """Register the model logged at ``artifact_path`` of run ``run_id`` (linked to that run).

    Creates ``registered_name`` if needed; sets ``alias`` on the new version. Returns the version.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(registered_name)
    except MlflowException as err:
        if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(
        registered_name, source, run_id=run_id, tags=dict(tags or {})
    ).version
    if alias:
        client.set_registered_model_alias(registered_name, alias, version)
    return str(version)


@dataclass(frozen=True)
class LoggedModel:
    """A model ``log_embedding_model`` logged, downloaded: its weights directory and its settings."""

    weights: Path  # a sentence-transformers or model2vec directory, or what a media model saved
    settings: dict[str, Any]  # name, backend, prompts, normalize, batch_size, max_length, variant

    @property
    def backend(self) -> str | None:
        """``sentence_transformers``, ``model2vec`` or ``media``: what the weights are."""
        return self.settings.get("backend")

    @property
    def kind(self) -> str:
        """The ``model.kind`` that loads the weights."""
        from embsel_mlflow.config import ModelKind

        if self.backend == MEDIA:
            return str(self.settings.get("kind") or (self.settings.get("serving") or {}).get("kind"))
        return (
            ModelKind.static.value if self.backend == "model2vec" else ModelKind.sentence_transformers.value
        )

    def config(self, base: ModelConfig | None = None, *, name: str | None = None) -> ModelConfig:
        """The model config that loads these weights as they were logged.

        ``base``: a config whose settings win where set (a from_run candidate's prompts, batch
        size, device, ...); None: the logged settings alone, named as logged (else ``name``).
        """
        from embsel_mlflow.config import ModelConfig, ModelKind, StaticConfig

        settings = self.settings
        if base is None:
            base = ModelConfig(
                name=str(settings.get("name") or name),
                name_or_path=str(self.weights),
                batch_size=int(settings.get("batch_size", 32)),
            )
        static = self.backend == "model2vec"
        prompts = settings.get("prompts") or {}
        max_length = settings.get("max_length")
        if self.backend == MEDIA:  # a media kind reloads what its save_serving wrote
            return dataclasses.replace(
                base,
                kind=self.kind,
                name_or_path=str(self.weights),
                offline=None,
                revision=None,
                query_prompt=base.query_prompt or prompts.get("query"),
                document_prompt=base.document_prompt or prompts.get("document"),
                symmetric_prompt=base.symmetric_prompt or prompts.get("symmetric"),
                normalize=base.normalize or bool(settings.get("normalize")),
                max_seq_length=base.max_seq_length or (int(max_length) if max_length else None),
            )
        return dataclasses.replace(
            base,
            kind=ModelKind.static.value if static else ModelKind.sentence_transformers.value,
            name_or_path=str(self.weights),
            offline=None,
            revision=None,
            query_prompt=base.query_prompt or prompts.get("query"),
            document_prompt=base.document_prompt or prompts.get("document"),
            symmetric_prompt=base.symmetric_prompt or prompts.get("symmetric"),
            normalize=base.normalize or bool(settings.get("normalize")),
            # a static model keeps its own length limit; an ST directory carries its max_seq_length
            max_seq_length=base.max_seq_length or (int(max_length) if static and max_length else None),
            static=StaticConfig(distill=False, pca_dims=None) if static else base.static,
        )


def read_logged_model(directory: Path, *, missing: str) -> LoggedModel:
    """The logged model downloaded under ``directory`` (its ``settings.json`` + ``weights/``).

    The one reader of logged models; ``missing`` is the ModelError's message when there is none.
    """
    settings_files = sorted(directory.rglob("settings.json")) if directory.is_dir() else []
    if not settings_files or not (settings_files[0].parent / "weights").is_dir():
        raise ModelError(missing)
    settings = json.loads(settings_files[0].read_text(encoding="utf-8"))
    return LoggedModel(settings_files[0].parent / "weights", settings)


def fetch_logged_model(
    run_id: str, directory: Path, *, artifact_path: str = "model", tracking_uri: str | None = None
) -> LoggedModel:
    """The model ``log_embedding_model`` logged in run ``run_id``, downloaded under ``directory`` once."""
    target = directory / run_id
    if not (target / "artifacts" / "settings.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        _download(run_id, f"{artifact_path}/artifacts", target, tracking_uri)
    return read_logged_model(
        target, missing=f"run {run_id} has no embsel model at {artifact_path}/; pass the id of a train run"
    )


def logged_model_kind(run_id: str, *, artifact_path: str = "model", tracking_uri: str | None = None) -> str:
    """The ``model.kind`` of the model logged in run ``run_id``, from its settings alone (no weights)."""
    with tempfile.TemporaryDirectory(prefix="embsel-settings-") as tmp:
        _download(run_id, f"{artifact_path}/artifacts/settings.json", Path(tmp), tracking_uri)
        found = sorted(Path(tmp).rglob("settings.json"))
        if not found:
            raise ModelError(
                f"run {run_id} has no embsel model at {artifact_path}/; pass the id of a train run"
            )
        settings = json.loads(found[0].read_text(encoding="utf-8"))
    return LoggedModel(Path(), settings).kind


def _download(run_id: str, path: str, target: Path, tracking_uri: str | None) -> None:
    from mlflow.artifacts import download_artifacts

    from embsel_mlflow.tracking.store import resolve_tracking_uri

    try:
        download_artifacts(
            run_id=run_id,
            artifact_path=path,
            dst_path=str(target),
            tracking_uri=resolve_tracking_uri(tracking_uri),
        )
    except Exception as exc:
        raise ModelError(
            f"cannot load the model logged in run {run_id} ({type(exc).__name__}); pass the id of a "
            "train run that logged a model (runs:/<id>/model) in this tracking store"
        ) from exc
