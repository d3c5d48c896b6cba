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
    One request on all cores, OpenVINO's default: splitting each batch across its throughput
    streams ran 14% faster alone but 4-8% slower through the encoder (2 cores, shared host).
    """
    import openvino as ov
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": precision_hint})
    names = [port.get_any_name() for port in compiled.inputs]

    def forward(**features: Any) -> BaseModelOutput:
        hidden = compiled({name: features[name].cpu().numpy() for name in names})[0]
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    ran = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
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
