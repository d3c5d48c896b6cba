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
