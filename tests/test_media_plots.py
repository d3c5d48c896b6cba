"""The diagnostic plot of image and audio runs (``tracking/plots.py``).

Every image and audio family draws its text counterpart's figure (a confusion matrix for
classification, gold label by cluster for clustering, the per-query nDCG for retrieval), and
under a classification or clustering of media items it lists the items it got wrong by their
paths. Checked on the functions with per-item tables shaped as the families write them, and
through ``embsel evaluate`` on the real demo sets (espeak-ng speech, scikit-learn's digits).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow import MlflowClient

from embsel_mlflow.evaluation.base import TaskResult
from embsel_mlflow.families import FAMILIES
from embsel_mlflow.tracking.plots import MAX_LISTED_ITEMS, PLOTTERS, result_figure, wrong_media_items
from tests.cli_harness import invoke
from tests.tiny_audio_models import have_espeak

RUN_ID = re.compile(r"\(run ([0-9a-f]{32})\)")


def _texts(figure: Figure) -> list[str]:
    """Every text drawn: titles, axis labels, tick labels, free text."""
    found = [t.get_text() for t in figure.findobj(lambda artist: hasattr(artist, "get_text"))]
    return [text for text in found if text]


def _classified(column: str = "audio") -> pd.DataFrame:
    """A per-item table as the classification families write it: 12 items of three classes, two wrong."""
    labels = ["a", "b", "c"] * 4
    predicted = list(labels)
    predicted[4], predicted[9] = "c", "b"  # item 4 is a "b", item 9 an "a"
    return pd.DataFrame(
        {
            column: [f"{column}/clip_{i}.wav" for i in range(12)],
            "label": labels,
            "predicted": predicted,
            "agreement": 1.0,
        }
    )


def test_every_built_in_family_has_a_plot() -> None:
    """A family without a plotter logs no figure: each image and audio family has its counterpart's."""
    assert set(FAMILIES) <= set(PLOTTERS), set(FAMILIES) - set(PLOTTERS)
    media = [name for name in FAMILIES if name.startswith(("image_", "audio_", "zero_shot_", "text_to_"))]
    assert len(media) == 9, media
    for name in media:
        base = next(b for b in ("classification", "clustering", "retrieval") if name.endswith(b))
        assert PLOTTERS[name] is PLOTTERS[base], name


def test_misclassified_media_items_are_listed_by_path() -> None:
    heading, lines = wrong_media_items(_classified())
    assert heading == "misclassified audio clips: 2 of 12"
    assert lines == ["audio/clip_4.wav: b -> c", "audio/clip_9.wav: a -> b"]
    result = TaskResult(
        "audio_classification", "voices", "test", {"accuracy": 10 / 12}, "accuracy", _classified()
    )
    figure = result_figure(result, "resemblyzer")
    assert figure is not None
    texts = "\n".join(_texts(figure))
    assert "audio/clip_4.wav: b -> c" in texts and "misclassified audio clips: 2 of 12" in texts
    assert "resemblyzer on voices [test]" in texts
    # the confusion matrix, by class name on both axes
    (matrix, _listing) = figure.axes
    assert [t.get_text() for t in matrix.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in matrix.get_xticklabels()] == ["a", "b", "c"]


def test_clustered_media_items_outside_their_labels_cluster_are_listed() -> None:
    frame = pd.DataFrame(
        {
            "image": [f"images/{i}.png" for i in range(9)],
            "label": ["0", "0", "0", "1", "1", "1", "2", "2", "2"],
            "cluster": [5, 5, 7, 7, 7, 7, 9, 9, 9],  # image 2 (a 0) sits with the 1s
        }
    )
    heading, lines = wrong_media_items(frame)
    assert heading == "images outside their label's cluster: 1 of 9"
    assert lines == ["images/2.png: 0, in cluster 7 (matched to 1)"]
    result = TaskResult("image_clustering", "digits", "test", {"v_measure": 0.7}, "v_measure", frame)
    figure = result_figure(result, "pixels")
    assert figure is not None and "images/2.png: 0, in cluster 7 (matched to 1)" in "\n".join(_texts(figure))


def test_a_long_list_is_cut_and_says_how_many_more() -> None:
    frame = pd.DataFrame(
        {"audio": [f"a/{i}.wav" for i in range(40)], "label": ["x", "y"] * 20, "predicted": ["y", "x"] * 20}
    )
    result = TaskResult("audio_classification", "d", "test", {"accuracy": 0.0}, "accuracy", frame)
    figure = result_figure(result, "m")
    assert figure is not None
    texts = "\n".join(_texts(figure))
    listed = re.findall(r"a/\d+\.wav: ", texts)
    assert len(listed) == MAX_LISTED_ITEMS
    assert f"... and {40 - MAX_LISTED_ITEMS} more" in texts


def test_texts_and_correct_runs_list_nothing() -> None:
    texts = _classified("text").assign(text=lambda f: [f"sentence {i}" for i in range(12)])
    assert wrong_media_items(texts) == ("", [])  # texts are read in the per-item table
    right = _classified().assign(predicted=lambda f: f["label"])
    assert wrong_media_items(right) == ("misclassified audio clips: 0 of 12", [])
    result = TaskResult("audio_classification", "d", "test", {"accuracy": 1.0}, "accuracy", right)
    figure = result_figure(result, "m")
    assert figure is not None and len(figure.axes) == 1  # the matrix alone


def test_media_retrieval_draws_the_per_query_ndcg() -> None:
    frame = pd.DataFrame(
        {
            "query_id": ["q0", "q1", "q2"],
            "query": ["audio/0.wav", "audio/1.wav", "audio/2.wav"],
            "ndcg_at_10": [1.0, 0.5, 0.0],
            "recall_at_10": [1.0, 1.0, 0.0],
            "mrr_at_10": [1.0, 0.5, 0.0],
        }
    )
    result = TaskResult("audio_to_text_retrieval", "t", "test", {"ndcg_at_10": 0.5}, "ndcg_at_10", frame)
    figure = result_figure(result, "clap")
    assert figure is not None and "per-query ndcg_at_10" in _texts(figure)


# ---------------------------------------------------------------------------------------------
# Through `embsel evaluate`: the plot is an artifact of image and audio runs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("media_plots")
    for demo in ("spoken", "digits") if have_espeak() else ("digits",):
        written = invoke("demo-data", demo, demo, cwd=cwd)
        assert written.returncode == 0, written.stderr[-3000:]
    return cwd


def _evaluate(workspace: Path, model: str, data: str, root: str) -> tuple[MlflowClient, str]:
    store = f"sqlite:///{workspace / 'mlflow.db'}"
    result = invoke(
        "evaluate",
        f"model={model}",
        f"data={data}",
        f"data.root={root}",
        f"tracking.uri={store}",
        f"cache.dir={workspace / 'cache'}",
        "evaluation.show_progress=false",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    match = RUN_ID.search(result.stdout)
    assert match, result.stdout[-3000:]
    return MlflowClient(store), match.group(1)


def _png(client: MlflowClient, run_id: str, path: str) -> bytes:
    data = Path(client.download_artifacts(run_id, path)).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return data


def test_an_image_clustering_run_logs_its_plot_and_names_images_by_path(workspace: Path) -> None:
    client, run_id = _evaluate(workspace, "image_pixels_pca", "digits_clustering", "digits")
    _png(client, run_id, "plots/digits_clustering/test_image_clustering.png")
    table = json.loads(
        Path(client.download_artifacts(run_id, "per_item/digits_clustering/test.json")).read_text()
    )
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    # what the plot lists: the images k-means put outside their digit's cluster, as many as the
    # logged cluster_accuracy counts wrong (the same one-to-one matching of clusters and digits)
    heading, lines = wrong_media_items(frame)
    accuracy = client.get_run(run_id).data.metrics["test/cluster_accuracy"]
    assert len(lines) == round((1 - accuracy) * len(frame)) > 0, heading
    path = lines[0].split(":")[0]
    assert re.fullmatch(r"images/\d+\.png", path) and (workspace / "digits" / path).is_file()


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed (apt install espeak-ng)")
def test_an_audio_classification_run_logs_its_confusion_matrix(workspace: Path) -> None:
    client, run_id = _evaluate(workspace, "audio_mfcc_pca", "spoken_speaker_id", "spoken")
    _png(client, run_id, "plots/spoken_speaker_id/test_audio_classification.png")
    table = json.loads(
        Path(client.download_artifacts(run_id, "per_item/spoken_speaker_id/test.json")).read_text()
    )
    assert table["columns"][:3] == ["audio", "label", "predicted"]
    assert all(re.fullmatch(r"audio/\w+_test_\d\.wav", row[0]) for row in table["data"])
