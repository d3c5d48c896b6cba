"""Images and sound as embedding inputs: media references, safe paths, lazy decoding.

- :mod:`.items`: :class:`Media`, the reference a family hands to ``encode`` instead of a text
  (modality, resolved path or bytes, row, content hash); :func:`item_hash` keys the cache.
- :mod:`.paths`: media column values -> :class:`Media`, refusing paths that leave ``data.root``.
- :mod:`.media_io`: decoding (Pillow, soundfile + soxr), self-contained so that the served
  pyfunc ships it beside itself (``code_paths``) and decodes exactly as evaluation did.
- :mod:`.decode`: a batch of items -> RGB images / mono clips at the model's rate (item-named errors).
- :mod:`.demo`: the offline demo sets (``embsel demo-data digits|spoken``).

Nothing here holds decoded media: a model decodes one batch at a time (:func:`.items.batches`).
"""

from embsel_mlflow.media.items import AUDIO, IMAGE, MODALITIES, TEXT, Media, item_hash, modality_of

__all__ = ["AUDIO", "IMAGE", "MODALITIES", "TEXT", "Media", "item_hash", "modality_of"]
