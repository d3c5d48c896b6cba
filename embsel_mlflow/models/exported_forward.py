"""Run an exported transformer (OpenVINO, ONNX Runtime) as a sentence-transformers ``forward``.

Used in evaluation (``models/backends.py``) and by the champion's pyfunc, which MLflow loads
without embsel_mlflow installed: this file is logged beside it (``code_paths``), so it imports
nothing of embsel_mlflow and only torch, numpy and the runtime itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXPORTED_BACKENDS = ("openvino", "onnx")
# Below this many rows per stream a batch is not split: OpenVINO's latency-mode model (all cores
# on one request) runs it, as it runs single queries.
MIN_ROWS_PER_STREAM = 4


@contextmanager
def torch_threads_for(backend: str | None) -> Iterator[None]:
    """Torch on one intra-op thread while a backend with its own thread pool encodes.

    Under OpenVINO or ONNX Runtime, torch only pools and normalises; its OpenMP threads, which
    spin on after each small op, took cores from the backend's threads: OpenVINO int8 encoded
    STS-B texts 15% faster with torch on one thread (1522 against 1319 texts/s, 2 cores).
    """
    if backend not in EXPORTED_BACKENDS:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def openvino_forward(ov_model: Any, precision_hint: str) -> tuple[Callable[..., Any], str]:
    """A ``forward`` that runs ``ov_model`` on the CPU, and the precision OpenVINO really runs.

    ``INFERENCE_PRECISION_HINT`` is pinned (OpenVINO otherwise runs bf16 on CPUs that have it).
    Batches run split across OpenVINO's throughput streams (one per core on a small CPU), all
    started before any is awaited: one request on all cores spends much of a small model's time
    synchronising its threads after each layer. OpenVINO int8 MiniLM on 2 cores: 1,800 ->
    2,060 STS-B texts/s. Single queries and small batches keep the latency-mode model, whose one
    request uses every core (the throughput model's 1-thread streams were 1.3x slower there).
    """
    import numpy as np
    import openvino as ov
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision_hint}
    latency = core.compile_model(ov_model, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"})
    batched = core.compile_model(ov_model, "CPU", {**config, "PERFORMANCE_HINT": "THROUGHPUT"})
    streams = int(batched.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    requests = [batched.create_infer_request() for _ in range(streams)]
    names = [port.get_any_name() for port in latency.inputs]

    def forward(**features: Any) -> BaseModelOutput:
        inputs = {name: features[name].cpu().numpy() for name in names}
        rows = len(inputs[names[0]])
        parts = min(streams, rows // MIN_ROWS_PER_STREAM)
        if parts <= 1:
            hidden = latency(inputs)[0]
        else:
            bounds = np.linspace(0, rows, parts + 1).astype(int)
            for request, start, end in zip(requests, bounds[:-1], bounds[1:], strict=False):
                request.start_async({name: array[start:end] for name, array in inputs.items()})
            for request in requests[:parts]:
                request.wait()
            # concatenate copies: the requests' output buffers are reused by the next batch
            hidden = np.concatenate([request.get_output_tensor(0).data for request in requests[:parts]])
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    ran = str(latency.get_property("INFERENCE_PRECISION_HINT"))
    return forward, ran.lower().replace("<type: '", "").replace("'>", "")


def onnx_session(path: str) -> Any:
    """An ONNX Runtime CPU session for the model file ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ORT's idle threads spin-wait for the next run by default, which slowed a torch model timed
    # right after it in the same process 4.6x (single queries, 2 cores): measured interleaved
    # ratios and select's timing of other candidates would be skewed, so they sleep instead
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_forward(session: Any) -> Callable[..., Any]:
    """A transformer ``forward`` that runs ``session``: features in, ``last_hidden_state`` out."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    names = [port.name for port in session.get_inputs()]

    def forward(**features: Any) -> BaseModelOutput:
        hidden = session.run(None, {name: features[name].cpu().numpy() for name in names})[0]
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    return forward
