"""Candidate kinds (``model.kind``): a registry of kind objects, one module per built-in kind.

``build_encoder(cfg, ...)`` builds any candidate; ``register_kind(kind)`` adds a kind without
touching the package (see ``base.py``).
"""

from embsel_mlflow.candidates.base import (
    KINDS,
    BuildContext,
    CandidateKind,
    build_encoder,
    check_kinds,
    get_kind,
    register_kind,
)

# The built-in kinds register themselves on import, in this order (the order errors list them).
# isort: off
from embsel_mlflow.candidates import (
    sentence_transformers,
    transformers,
    static,
    lsa,
    bm25,
    openai_api,
    from_run,
    clip,
    image_features,
    clap,
    resemblyzer,
    audio_features,
)

# isort: on

__all__ = [
    "KINDS",
    "BuildContext",
    "CandidateKind",
    "audio_features",
    "bm25",
    "build_encoder",
    "check_kinds",
    "clap",
    "clip",
    "from_run",
    "get_kind",
    "image_features",
    "lsa",
    "openai_api",
    "register_kind",
    "resemblyzer",
    "sentence_transformers",
    "static",
    "transformers",
]
