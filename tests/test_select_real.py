"""The real-data selection of the README (slow: MiniLM and its variants on STS-B and SciFact)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.test_select import _select, _store

pytestmark = pytest.mark.slow


def test_real_selection_on_stsb_and_scifact(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "candidates=[minilm,minilm_cls,static_minilm,lsa,bm25]",
        "datasets=[stsb,scifact]",
        f"datasets.stsb.root={shared_data_dir}",
        f"datasets.scifact.root={shared_data_dir}",
        "evaluation.show_progress=false",
        "select.register=embsel_champion",
    ]
    assert _select(args, tmp_path) == 0
    out = capsys.readouterr().out
    client = _store(tmp_path)
    (parent,) = [
        r
        for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    # keep "n/a" as written (pandas would read it as a missing value); empty cells stay NaN
    csv_path = client.download_artifacts(parent.info.run_id, "leaderboard.csv")
    frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""]).set_index("candidate")
    # every leaderboard score is what `embsel evaluate` gives alone (README table)
    assert round(frame.loc["minilm", "stsb"], 5) == 0.82032
    assert round(frame.loc["minilm", "scifact"], 5) == 0.64508
    assert frame.loc["minilm", "stsb"] > frame.loc["lsa", "stsb"]
    assert frame.loc["minilm", "scifact"] > frame.loc["lsa", "scifact"]
    assert frame.loc["bm25", "stsb vs best"] == "n/a" and frame.loc["bm25", "scifact"] > 0.6
    speeds = frame["texts_per_second"]
    # the static model is far faster than every transformer candidate; on this CPU LSA (a sparse
    # TF-IDF product + one SVD projection) measured faster still, so "fastest" is whichever it is
    assert speeds["static_minilm"] > 10 * max(speeds["minilm"], speeds["minilm_cls"])
    fastest = speeds.drop("bm25").idxmax()
    assert re.search(rf"fastest: {fastest} \([\d,]+ texts/s\), [\d.]+x the next fastest", out), out
    assert parent.data.tags["embsel.winner"] and "recommendation: " in out
    version = client.get_model_version_by_alias("embsel_champion", "champion")
    assert version.tags["embsel.candidate"] == parent.data.tags["embsel.winner"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/quality_vs_throughput.png" in artifacts
