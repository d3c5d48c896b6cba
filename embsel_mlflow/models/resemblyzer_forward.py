"""resemblyzer's speaker encoder: the one forward pass evaluation and the served model run.

SELF-CONTAINED on purpose (numpy, torch, resemblyzer; no embsel_mlflow import): a registered
model ships this file beside its pyfunc (``code_paths``) and calls :func:`load` on the directory
:meth:`ResemblyzerForward.save` wrote. Both sides hand it decoded clips (``media_io``: mono
float32 at 16 kHz).

The network and its use are resemblyzer's own (``VoiceEncoder.forward``, its partial-utterance
slicing and mel spectrogram); only the weights are read from safetensors instead of the
package's pickled ``pretrained.pt``, and the partials of a batch of clips go through the LSTM
together rather than one clip at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MODULE = "resemblyzer_forward"
WEIGHTS_FILE = "voice_encoder.safetensors"
SAMPLE_RATE = 16000  # resemblyzer.hparams.sampling_rate
EMBEDDING_DIM = 256  # resemblyzer.hparams.model_embedding_size
_PARTIALS_PER_CALL = 64  # partial utterances per LSTM call (1.6 s each)
_INT16_MAX = 2**15 - 1
DEFAULT_SETTINGS: dict[str, Any] = {
    "rate": 1.3,
    "min_coverage": 0.75,
    "trim_silences": True,
    "batch_size": 32,
}


class ResemblyzerForward:
    """Mono 16 kHz clips in, L2-normalised 256-d speaker embeddings out."""

    sample_rate = SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM
    modalities = ("audio",)

    def __init__(self, state: dict[str, Any], settings: dict[str, Any], *, device: str = "cpu") -> None:
        self.settings = {**DEFAULT_SETTINGS, **settings}
        self.network = _voice_encoder(state, device)

    @property
    def state(self) -> dict[str, Any]:
        return self.network.state_dict()

    def embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        """One embedding per 16 kHz mono clip: resemblyzer's ``embed_utterance`` of its ``preprocess_wav``."""
        import torch
        from resemblyzer import audio

        mels: list[np.ndarray] = []
        owners: list[int] = []
        for index, clip in enumerate(clips):
            wav = self._preprocessed(np.asarray(clip, dtype=np.float32))
            wav_slices, mel_slices = self.network.compute_partial_slices(
                len(wav), self.settings["rate"], self.settings["min_coverage"]
            )
            if wav_slices[-1].stop >= len(wav):
                wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
            mel = audio.wav_to_mel_spectrogram(wav)
            mels.extend(mel[part] for part in mel_slices)
            owners.extend([index] * len(mel_slices))
        partials = []
        with torch.inference_mode():
            for start in range(0, len(mels), _PARTIALS_PER_CALL):
                batch = torch.from_numpy(np.stack(mels[start : start + _PARTIALS_PER_CALL]))
                partials.append(self.network(batch.to(self.network.device)).cpu().numpy())
        partial = np.concatenate(partials) if partials else np.empty((0, EMBEDDING_DIM), np.float32)
        owner = np.asarray(owners)
        out = np.zeros((len(clips), EMBEDDING_DIM), dtype=np.float32)
        for index in range(len(clips)):
            mean = partial[owner == index].mean(axis=0)
            norm = float(np.linalg.norm(mean))
            out[index] = mean / norm if norm > 0 else mean
        return out

    def _preprocessed(self, wav: np.ndarray) -> np.ndarray:
        """resemblyzer's preprocess_wav on a clip already at 16 kHz (volume up to -30 dBFS, silences cut).

        A silent clip stays as it is (resemblyzer would divide by its zero loudness), and a clip
        in which the voice detector hears nothing keeps its samples rather than becoming empty.
        """
        from resemblyzer import audio

        if not np.any(wav):
            return wav
        wav = audio.normalize_volume(wav, -30, increase_only=True).astype(np.float32, copy=False)
        if not self.settings["trim_silences"]:
            return wav
        trimmed = audio.trim_long_silences(wav)
        return trimmed if len(trimmed) else wav

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray:
        """Embeddings of decoded clips (mono float32 at 16 kHz), a batch of ``batch_size`` at a time."""
        if modality != "audio":
            raise ValueError(f"this speaker encoder embeds audio only, not {modality}")
        out = [self.embed_clips(batch) for batch in _batches(list(inputs), int(self.settings["batch_size"]))]
        return np.concatenate(out) if out else np.empty((0, EMBEDDING_DIM), dtype=np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the weights (safetensors) under ``directory``; the settings :func:`load` needs."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {name: tensor.detach().cpu().contiguous() for name, tensor in self.state.items()},
            directory / WEIGHTS_FILE,
        )
        return {**self.settings, "module": MODULE, "weights": WEIGHTS_FILE}


def load(directory: str | Path, settings: dict[str, Any]) -> ResemblyzerForward:
    """The model :meth:`ResemblyzerForward.save` wrote to ``directory``."""
    from safetensors.torch import load_file

    state = load_file(str(Path(directory) / settings.get("weights", WEIGHTS_FILE)))
    return ResemblyzerForward(state, settings)


def _voice_encoder(state: dict[str, Any], device: str) -> Any:
    """resemblyzer's VoiceEncoder with ``state`` loaded (strictly) instead of its pickled file."""
    import torch
    from resemblyzer import VoiceEncoder
    from resemblyzer.hparams import mel_n_channels, model_embedding_size, model_hidden_size, model_num_layers

    class _Encoder(VoiceEncoder):
        def __init__(self) -> None:  # VoiceEncoder's layers, without its torch.load of pretrained.pt
            torch.nn.Module.__init__(self)
            self.lstm = torch.nn.LSTM(mel_n_channels, model_hidden_size, model_num_layers, batch_first=True)
            self.linear = torch.nn.Linear(model_hidden_size, model_embedding_size)
            self.relu = torch.nn.ReLU()
            self.device = torch.device(device)

    network = _Encoder()
    # The training checkpoint also holds the GE2E loss's similarity scale: not part of the encoder.
    wanted = set(network.state_dict())
    network.load_state_dict({name: value for name, value in state.items() if name in wanted}, strict=True)
    return network.to(network.device).eval()


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + max(1, size)] for start in range(0, len(items), max(1, size))]
