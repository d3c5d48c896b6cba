"""The MLflow UI as a user sees it: real `mlflow server` on 127.0.0.1, real headless Chromium.

Three `embsel evaluate` runs (two finished, one failed) are logged to the server; the link that
`embsel evaluate` prints is opened in Debian's Chromium, driven by Playwright.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints.evaluate import main as evaluate_main
from tests.mlflow_server import serve_mlflow

CHROMIUM = os.environ.get("EMBSEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    ),
]


@pytest.fixture
def server(tmp_path: Path):
    with serve_mlflow(tmp_path) as url:
        yield url


def _evaluate(args: list[str]) -> int:
    try:
        return evaluate_main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def browser_page(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile: what a new user sees
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 2400, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _row_text(page, run_name: str) -> str:
    """All cells of the table row of ``run_name`` (the grid renders pinned and scrolling parts apart)."""
    index = page.locator("[role=row]", has_text=run_name).first.get_attribute("row-index")
    return " ".join(part.inner_text() for part in page.locator(f"[role=row][row-index='{index}']").all())


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_runs_table_and_failed_run_read_well_in_chromium(
    server: str, browser_page, tiny_st_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny = [f"model.name_or_path={tiny_st_dir}", "model.name=tiny", f"tracking.uri={server}"]
    tiny += ["evaluation.show_progress=false"]
    assert _evaluate([*tiny, "data=demo_sts"]) == 0
    assert _evaluate([*tiny, "data=demo_pair_classification"]) == 0
    assert _evaluate([*tiny, "data=demo_retrieval", "data.root=/no/such/dir"]) == 2
    printed = capsys.readouterr().out
    (link,) = set(re.findall(r"runs: (\S+)", printed))
    assert link.startswith(server)

    client = MlflowClient(server)
    runs = client.search_runs([client.get_experiment_by_name("embsel").experiment_id])
    assert len(runs) == 3
    page = browser_page

    # The printed link: the runs table (not GenAI traces), all three runs on its first page.
    page.goto(link)
    for run in runs:
        page.get_by_text(run.info.run_name, exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("3 matching runs").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "runs.png"))
    assert "/runs" in page.url

    # Each finished run's row shows its model, dataset and main score, with no column added by hand.
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        model, dataset = run.info.run_name.split("@")
        assert model == tiny_st_dir.name
        row = _row_text(page, run.info.run_name)
        assert f"{dataset}/test" in row  # the Dataset column
        assert run.data.tags["main_score_name"] in row
        assert str(run.data.metrics["main_score"])[:6] in row, row

    # A failed run's page says why in its description.
    (failed,) = [r for r in runs if r.info.status == "FAILED"]
    reason = failed.data.tags["error"]
    page.goto(f"{server}/#/experiments/{failed.info.experiment_id}/runs/{failed.info.run_id}")
    page.get_by_text("/no/such/dir", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "failed_run.png"))
    description = page.locator("body").inner_text()
    assert "Description" in description
    assert reason[:60] in " ".join(description.split())


def _main(module, args: list[str]) -> int:
    try:
        return module.main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


def _page_text(page, url: str, wait_for: str) -> str:
    page.goto(url)
    page.get_by_text(wait_for, exact=False).first.wait_for(timeout=60_000)
    return " ".join(page.locator("body").inner_text().split())


@pytest.mark.slow  # evaluate x3, train and select against a real server, then Chromium
def test_identities_registered_champion_and_descriptions_read_well_in_chromium(
    server: str,
    browser_page,
    tiny_st_dir: Path,
    tiny_bert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What issue 22 asked a user to see: a distilled static model and a fine-tuned model named
    apart from their base (runs table and Models tab), the champion's logged model showing its
    registered version, select's verdict "(best)" and evaluate's task in the descriptions."""
    from embsel_mlflow.entrypoints import select as select_entrypoint
    from embsel_mlflow.entrypoints import train as train_entrypoint

    monkeypatch.chdir(tmp_path)
    base = tiny_st_dir.name
    tiny = [f"model.name_or_path={tiny_st_dir}", "model.offline=null", "model.revision=null"]
    common = ["evaluation.show_progress=false", f"tracking.uri={server}"]
    assert _evaluate(["model=minilm", *tiny, "data=demo_sts", *common]) == 0
    static = ["model=static_minilm", *tiny, "model.static.pca_dims=8"]
    assert _evaluate([*static, "data=demo_sts", *common]) == 0
    train = ["model=minilm", *tiny, "data=demo_retrieval", "data.train_split=test", "train.batch_size=4"]
    train += ["train.max_steps=2", "train.logging_steps=1", "train.system_metrics=false"]
    assert _main(train_entrypoint, [*train, *common]) == 0
    client = MlflowClient(server)
    experiment_id = client.get_experiment_by_name("embsel").experiment_id
    (trained,) = client.search_runs([experiment_id], "tags.`embsel.entry_point` = 'train'")
    run8 = trained.info.run_id[:8]
    from_run = ["model=from_run", f"model.run_id={trained.info.run_id}", "data=demo_retrieval"]
    assert _evaluate([*from_run, *common]) == 0
    select = ["candidates=[transformers_mean,e5_base]", "datasets=[demo_sts]", "select.resamples=200"]
    select += [f"candidates.transformers_mean.name_or_path={tiny_bert_dir}"]
    select += [f"candidates.e5_base.name_or_path={tiny_st_dir}"]
    select += ["select.efficiency.sample_size=16", "select.efficiency.latency_queries=4"]
    select += ["select.register=tiny_champion", "tracking.experiment=select"]
    assert _main(select_entrypoint, [*select, *common]) == 0

    runs = client.search_runs([experiment_id])
    names = {run.info.run_name for run in runs}
    assert {f"{base}@demo_sts", f"static:{base}@demo_sts", f"ft({run8})@demo_retrieval"} <= names
    page = browser_page

    # The runs table: the static and the fine-tuned model's runs under names of their own.
    table = _page_text(page, f"{server}/#/experiments/{experiment_id}/runs", f"static:{base}@demo_sts")
    assert f"static:{base}@demo_sts" in table and f"ft({run8})@demo_retrieval" in table

    # The Models tab: three logged models, three names (a logged model's name holds no ':' or '/').
    models = _page_text(page, f"{server}/#/experiments/{experiment_id}/models", f"{base}+ft({run8})")
    assert f"{base}+ft({run8})" in models and f"static\ua789{base}" in models
    names = [m.name for m in client.search_logged_models(experiment_ids=[experiment_id])]
    assert {base, f"static\ua789{base}", f"{base}+ft({run8})"} <= set(names)

    # The champion: its logged model names its registered version, on the Models tab and its page.
    select_experiment = client.get_experiment_by_name("select").experiment_id
    (parent,) = [
        run for run in client.search_runs([select_experiment]) if "mlflow.parentRunId" not in run.data.tags
    ]
    version = parent.data.tags["embsel.registered_version"]
    (champion,) = [
        m
        for m in client.search_logged_models(experiment_ids=[select_experiment])
        if "mlflow.modelVersions" in m.tags
    ]
    models = _page_text(page, f"{server}/#/experiments/{select_experiment}/models", "tiny_champion")
    assert "tiny_champion" in models
    model_page = _page_text(
        page, f"{server}/#/experiments/{select_experiment}/models/{champion.model_id}", "tiny_champion"
    )
    assert "Not registered" not in model_page and f"v{version}" in model_page.replace(" ", "")
    page.screenshot(path=str(tmp_path / "champion.png"))

    # Descriptions render as written: select's verdict and evaluate's split and task are not links.
    (evaluated,) = [run for run in runs if run.info.run_name == f"{base}@demo_sts"]
    evaluate_page = _page_text(
        page, f"{server}/#/experiments/{experiment_id}/runs/{evaluated.info.run_id}", "Description"
    )
    assert f"{base} on demo_sts [test] (sts)" in evaluate_page
    # select's verdict: needs jobs/select.py to escape its description (tracking.markdown.escape)
    select_page = _page_text(
        page, f"{server}/#/experiments/{select_experiment}/runs/{parent.info.run_id}", "Description"
    )
    assert "(best)" in select_page
