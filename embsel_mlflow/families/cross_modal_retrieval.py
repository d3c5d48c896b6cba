"""Image/audio <-> text retrieval from one table of pairs: MTEB's Any2Any retrieval protocol.

A split is one table with a media column (``image`` or ``audio``), its caption or transcript
(``text``) and optionally ``id`` (the media item's id; rows with the same id, or without ids the
same path, are several captions of one item). The queries are one side, the corpus the other,
and a query's relevant documents are those it is paired with (relevance 1). Identical captions
are one text, so "a photo of a dog" paired with ten images is one query with ten relevant images.
Searching and scoring are :class:`RetrievalTask`'s (MTEB's AbsTaskRetrieval, used for i2t and
t2i tasks alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.config import TaskType
from embsel_mlflow.data.tables import media, texts
from embsel_mlflow.errors import DataError
from embsel_mlflow.evaluation.base import EvalTask
from embsel_mlflow.families.base import Item, PairKind
from embsel_mlflow.families.media_classification import ITEMS
from embsel_mlflow.families.retrieval import RetrievalFamily, RetrievalTask
from embsel_mlflow.media.items import AUDIO, IMAGE, TEXT, Media

if TYPE_CHECKING:
    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData


@dataclass
class CrossModalExamples:
    """RetrievalExamples' fields; one side holds media items, the other texts."""

    corpus: dict[str, Item]  # doc id -> text or Media
    queries: dict[str, Item]  # query id -> Media or text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: 1}


class CrossModalRetrievalTask(RetrievalTask):
    """Exact cosine search of the queries over the corpus, trec_eval metrics (main: nDCG@10)."""

    examples_type: ClassVar[type] = CrossModalExamples


class ImageToTextRetrievalTask(CrossModalRetrievalTask):
    task_type: ClassVar[str] = TaskType.image_to_text_retrieval


class TextToImageRetrievalTask(CrossModalRetrievalTask):
    task_type: ClassVar[str] = TaskType.text_to_image_retrieval


class AudioToTextRetrievalTask(CrossModalRetrievalTask):
    task_type: ClassVar[str] = TaskType.audio_to_text_retrieval


class TextToAudioRetrievalTask(CrossModalRetrievalTask):
    task_type: ClassVar[str] = TaskType.text_to_audio_retrieval


class CrossModalRetrievalFamily(RetrievalFamily):
    """Media items and texts paired in one table; items are queries.

    Its media side is what monitor watches, select times and fitted models learn from; its
    training pairs are the (media item, text) pairs.
    """

    modality: ClassVar[str]  # media.IMAGE or media.AUDIO
    media_queries: ClassVar[bool]  # True: media -> text; False: text -> media
    examples_type: ClassVar[type] = CrossModalExamples
    qrels_splits: ClassVar[bool] = False  # its split is a table of pairs, not qrels
    ranks_documents: ClassVar[bool] = False  # a lexical ranker cannot read images or sound
    pair_kind: ClassVar[PairKind | None] = PairKind.media_text

    @property
    def media_role(self) -> str:
        return "query" if self.media_queries else "document"

    # its own examples type (not RetrievalExamples): one side holds media items
    def build(  # type: ignore[override]
        self, tables: Tables, split: str, limit: int | None
    ) -> CrossModalExamples:
        modality = self.modality
        loaded = tables.split(split, [modality, "text"])
        frame = loaded.frame
        has_ids = "id" in frame.columns
        texts(frame, "text", loaded)  # every value checked first, with the file's row numbers
        if has_ids:
            texts(frame, "id", loaded, what="id")
        kept, items = media(tables, frame, modality, loaded, modality)
        captions = texts(kept, "text", loaded)
        keys = texts(kept, "id", loaded, what="id") if has_ids else [item.source for item in items]

        items_by_id: dict[str, Media] = {}
        caption_ids: dict[str, str] = {}  # caption -> its id
        pairs: dict[tuple[str, str], None] = {}  # (media id, caption id), in table order
        for item, caption, key in zip(items, captions, keys, strict=True):
            media_id = f"{modality}:{key}"
            first = items_by_id.setdefault(media_id, item)
            if first.digest != item.digest:
                raise DataError(
                    f"{item.where}: rows {first.row} and {item.row} give {modality} {key!r} two different "
                    f"files ({first.source!r}, {item.source!r}); rows of one {modality} need the same file"
                )
            caption_id = caption_ids.setdefault(caption, f"{TEXT}:{caption}")
            pairs[(media_id, caption_id)] = None
        if len(pairs) < len(items):
            repeated = len(items) - len(pairs)
            tables.warn(
                "duplicate_pairs",
                f"{loaded.source}: {repeated} repeated ({modality}, text) row(s); each pair counts once",
                repeated,
            )

        captions_by_id = {caption_id: caption for caption, caption_id in caption_ids.items()}
        qrels: dict[str, dict[str, int]] = {}
        for media_id, caption_id in pairs:
            query, document = (media_id, caption_id) if self.media_queries else (caption_id, media_id)
            qrels.setdefault(query, {})[document] = 1
        if limit is not None:  # the first N queries, with the whole corpus
            qrels = dict(list(qrels.items())[:limit])
        row_queries = [
            f"{modality}:{key}" if self.media_queries else caption_ids[caption]
            for key, caption in zip(keys, captions, strict=True)
        ]
        tables.limit_last(kept[[query in qrels for query in row_queries]])  # the rows evaluated

        side_media: dict[str, Item] = dict(items_by_id)
        side_text: dict[str, Item] = dict(captions_by_id)
        queries, corpus = (side_media, side_text) if self.media_queries else (side_text, side_media)
        return CrossModalExamples(
            corpus=corpus, queries={query: queries[query] for query in qrels}, qrels=qrels
        )

    def _media(self, examples: Any) -> list[Item]:
        return list((examples.queries if self.media_queries else examples.corpus).values())

    def monitor_texts(self, examples: Any) -> tuple[list[Item], str | None]:
        """The media items: what an image or audio window is compared with."""
        return self._media(examples), self.media_role

    def timing_texts(self, examples: Any) -> tuple[list[Item], list[Item], str | None]:
        """The media items, in batches and one at a time (select's efficiency is in the media's unit)."""
        items = self._media(examples)
        return items, items, self.media_role

    def calibration_texts(self, examples: Any) -> list[Item]:
        return self._media(examples)

    def fit_texts(self, data: TaskData) -> tuple[list[Item], str]:
        return self._media(data.examples), f"{data.split} {ITEMS[self.modality]} (no texts)"

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """({modality}: item, text: its caption) for every pair of the table."""
        items, captions = [], []
        for query, judged in examples.qrels.items():
            for document, relevance in judged.items():
                if relevance <= 0 or query not in examples.queries or document not in examples.corpus:
                    continue
                item, caption = examples.queries[query], examples.corpus[document]
                if not self.media_queries:
                    item, caption = caption, item
                items.append(item)
                captions.append(caption)
        return {self.modality: items, TEXT: captions}


class ImageToTextRetrievalFamily(CrossModalRetrievalFamily):
    name: ClassVar[str] = TaskType.image_to_text_retrieval
    modality: ClassVar[str] = IMAGE
    media_queries: ClassVar[bool] = True
    task_class: ClassVar[type[EvalTask]] = ImageToTextRetrievalTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image", "text")
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE, TEXT})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "text")
    monitor_role: ClassVar[str | None] = "query"


class TextToImageRetrievalFamily(CrossModalRetrievalFamily):
    name: ClassVar[str] = TaskType.text_to_image_retrieval
    modality: ClassVar[str] = IMAGE
    media_queries: ClassVar[bool] = False
    task_class: ClassVar[type[EvalTask]] = TextToImageRetrievalTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("image", "text")
    modalities: ClassVar[frozenset[str]] = frozenset({IMAGE, TEXT})
    window_columns: ClassVar[tuple[str, ...] | None] = ("image", "text")
    monitor_role: ClassVar[str | None] = "document"


class AudioToTextRetrievalFamily(CrossModalRetrievalFamily):
    name: ClassVar[str] = TaskType.audio_to_text_retrieval
    modality: ClassVar[str] = AUDIO
    media_queries: ClassVar[bool] = True
    task_class: ClassVar[type[EvalTask]] = AudioToTextRetrievalTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("audio", "text")
    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO, TEXT})
    window_columns: ClassVar[tuple[str, ...] | None] = ("audio", "text")
    monitor_role: ClassVar[str | None] = "query"


class TextToAudioRetrievalFamily(CrossModalRetrievalFamily):
    name: ClassVar[str] = TaskType.text_to_audio_retrieval
    modality: ClassVar[str] = AUDIO
    media_queries: ClassVar[bool] = False
    task_class: ClassVar[type[EvalTask]] = TextToAudioRetrievalTask
    embedded_columns: ClassVar[tuple[str, ...]] = ("audio", "text")
    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO, TEXT})
    window_columns: ClassVar[tuple[str, ...] | None] = ("audio", "text")
    monitor_role: ClassVar[str | None] = "document"
