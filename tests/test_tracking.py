"""The MLflow layer against a real sqlite store in a tmp dir."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.errors import DataError
from embsel_mlflow.tracking.params import MASK, config_to_params, flatten, mask_override, mask_secrets
from embsel_mlflow.tracking.run import record_failed_run, tracked_run
from embsel_mlflow.tracking.store import DEFAULT_TRACKING_URI, open_store, resolve_tracking_uri


def test_flatten_gives_dotted_leaves() -> None:
    cfg = {"model": {"name": "m", "prompts": {"q": None}}, "k": [1, 2], "empty": {}}
    assert flatten(cfg) == {"model.name": "m", "model.prompts.q": None, "k": [1, 2], "empty": {}}


def test_params_mask_secrets_and_truncate_long_values() -> None:
    cfg = {"model": {"token": "hf_secret", "name": "m"}, "tracking": {"password": None}, "long": "x" * 7000}
    params, truncated = config_to_params(cfg, max_length=6000)
    assert params["model.token"] == MASK
    assert params["tracking.password"] == "null"  # nothing to hide
    assert params["model.name"] == "m"
    assert len(params["long"]) == 6000 and params["long"].endswith("[truncated]")
    assert truncated == ["long"]
    assert "hf_secret" not in str(mask_secrets(cfg))


def test_override_secrets_are_masked() -> None:
    assert mask_override("model.token=hf_abc") == f"model.token={MASK}"
    assert mask_override("+tracking.api_key=xyz") == f"+tracking.api_key={MASK}"
    assert mask_override("model=minilm") == "model=minilm"


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # relative sqlite paths are made absolute (MLflow caches one store per URI string)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_tracking_uri("sqlite:////abs/cfg.db") == "sqlite:////abs/cfg.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_finished_run_with_batched_params_and_artifacts_beside_the_store(
    store_uri: str, tmp_path: Path
) -> None:
    tracking = TrackingConfig(uri=store_uri, experiment="exp", tags={"team": "search"})
    params = {f"p{i}": str(i) for i in range(250)}  # > 100: needs several batches
    with tracked_run(tracking, entry_point="evaluate", run_name="r") as run:
        run.log_params(params)
        run.log_metrics({"test/a": 0.5, "main_score": 0.5})
        run.log_dict({"x": 1}, "results.json")
    got = MlflowClient(store_uri).get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "r"
    assert got.data.params == params
    assert got.data.metrics == {"test/a": 0.5, "main_score": 0.5}
    assert got.data.tags["team"] == "search"
    assert got.data.tags["embsel.entry_point"] == "evaluate"
    assert Path(got.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path / "mlruns")
    assert (Path(got.info.artifact_uri.removeprefix("file://")) / "results.json").is_file()


def test_exception_ends_run_failed_with_one_line_error_and_keeps_what_was_logged(store_uri: str) -> None:
    tracking = TrackingConfig(uri=store_uri)
    with pytest.raises(DataError), tracked_run(tracking, entry_point="evaluate", run_name="r") as run:
        run.log_params({"a": "1"})
        raise DataError("column 'score' not found in x.csv\n(columns: a, b)")
    got = MlflowClient(store_uri).get_run(run.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["error"] == "column 'score' not found in x.csv (columns: a, b)"
    assert got.data.params == {"a": "1"}


def test_interrupt_ends_run_killed(store_uri: str) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        tracked_run(TrackingConfig(uri=store_uri), entry_point="e", run_name="r") as run,
    ):
        raise KeyboardInterrupt
    assert MlflowClient(store_uri).get_run(run.run_id).info.status == "KILLED"


def test_attaches_to_the_run_mlflow_run_created(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = open_store(store_uri)
    outer = client.create_run(client.create_experiment("projects")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)
    with tracked_run(
        TrackingConfig(uri=store_uri, experiment="other"), entry_point="evaluate", run_name="x"
    ) as run:
        run.log_metrics({"main_score": 1.0})
    assert run.run_id == outer
    assert client.get_experiment_by_name("other") is None  # no second run anywhere
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1


def test_record_failed_run(store_uri: str) -> None:
    run_id = record_failed_run(
        TrackingConfig(uri=store_uri), entry_point="evaluate", reason="bad key", run_name="x"
    )
    got = MlflowClient(store_uri).get_run(run_id)
    assert (got.info.status, got.data.tags["error"]) == ("FAILED", "bad key")


def _open_and_log(uri: str) -> str:
    with tracked_run(TrackingConfig(uri=uri, experiment="race"), entry_point="evaluate", run_name="r") as run:
        run.log_metrics({"m": 1.0})
    return run.run_id


def test_parallel_processes_on_a_fresh_store_do_not_race_the_schema_migration(store_uri: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        run_ids = pool.map(_open_and_log, [store_uri] * 3)
    client = MlflowClient(store_uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids)
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_sigterm_ends_the_run_killed_not_running(store_uri: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    ready = tmp_path / "ready"
    code = (
        "import sys, time\n"
        "from embsel_mlflow.config import TrackingConfig\n"
        "from embsel_mlflow.tracking.run import tracked_run\n"
        f"with tracked_run(TrackingConfig(uri={store_uri!r}), entry_point='e', run_name='r') as run:\n"
        f"    open({str(ready)!r}, 'w').write(run.run_id)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.2)  # let the write finish
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    got = MlflowClient(store_uri).get_run(ready.read_text())
    assert (got.info.status, got.data.tags["error"]) == ("KILLED", "terminated by SIGTERM")


def test_a_signal_while_a_run_closes_waits_for_the_close_then_stops_the_process(store_uri: str) -> None:
    """SIGTERM during the FINISHED write: the run still ends FINISHED, and the signal is not lost."""
    import os
    import signal

    from embsel_mlflow.tracking.run import RunTerminated, signals_held, terminate_on_signals

    client = MlflowClient(store_uri)
    with pytest.raises(RunTerminated), terminate_on_signals():
        with tracked_run(TrackingConfig(uri=store_uri), entry_point="e", run_name="r") as run:
            pass
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-close: held, not raised here
            held_through = client.get_run(run.run_id).info.status
        pytest.fail("the held SIGTERM was lost")  # pragma: no cover
    assert held_through == "FINISHED"
    assert client.get_run(run.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_inside_omegaconf_is_raised_once_omegaconf_returned(signum: str) -> None:
    """A signal while Hydra composes a sweep's next job: OmegaConf's cleanup must not turn it into
    an AttributeError (a traceback, exit 1 and a FAILED parent instead of KILLED)."""
    import os
    import signal
    import threading
    from dataclasses import dataclass, field

    from omegaconf import OmegaConf

    from embsel_mlflow.tracking.run import terminate_on_signals

    @dataclass
    class Runtime:
        config_sources: list = field(default_factory=list)

    cfg = OmegaConf.structured(Runtime)
    sources = [{"path": f"pkg://conf{i}", "provider": "main", "schema": "pkg"} for i in range(20)]
    expected = KeyboardInterrupt  # RunTerminated is one too; its reason is checked below
    for delay in (0.001, 0.004, 0.009, 0.016, 0.025):
        timer = threading.Timer(delay, os.kill, (os.getpid(), getattr(signal, signum)))
        with pytest.raises(expected) as raised, terminate_on_signals():
            timer.start()
            while True:  # mostly inside OmegaConf, as Hydra's composition is
                cfg.config_sources = sources
                for _ in range(20000):
                    pass
        frame = raised.tb
        while frame.tb_next is not None:
            frame = frame.tb_next
        assert "omegaconf" not in frame.tb_frame.f_code.co_filename
        assert signum != "SIGTERM" or getattr(raised.value, "reason", "") == "terminated by SIGTERM"
        assert len(cfg.config_sources) in (0, len(sources))  # no half-built list left behind


def test_markdown_escapes_what_would_render_as_links_emphasis_or_blocks() -> None:
    from embsel_mlflow.tracking.markdown import code, escape, table

    assert escape("m on stsb [test] (sts)") == "m on stsb \\[test\\] (sts)"
    assert escape("[0.5390, 0.8616] (best)") == "\\[0.5390, 0.8616\\] (best)"
    assert escape("cosine_spearman *x* <b>") == "cosine\\_spearman \\*x\\* &lt;b>"
    assert escape("- a\n12. b\n# c") == "\\- a\n12\\. b\n\\# c"
    assert escape("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"  # mid-line: left as it is
    assert code("a`b") == "``a`b``"
    assert table(["model", "score"], [["a|b", 1]]) == "| model | score |\n| --- | --- |\n| a\\|b | 1 |"


def test_profile_and_monitor_descriptions_lead_with_the_findings_and_the_alert_state() -> None:
    from embsel_mlflow.tracking.descriptions import MAX_FINDINGS, monitor_description, profile_description

    findings = [("info", "languages", "en only")] + [("warn", "exact_duplicates", "3 rows [1%]")] * 6
    text = profile_description("stsb", "sts", {"info": 1, "warn": 6, "error": 0}, findings)
    lines = text.splitlines()
    assert lines[0] == "profile of stsb (sts): 1 info, 6 warn, 0 error"
    assert lines[2] == "- warn `exact_duplicates`: 3 rows \\[1%\\]"  # worst first
    assert len(lines) == 2 + MAX_FINDINGS + 1 and lines[-1] == "- ... 2 more in profile.json"
    tags = {"drift.mmd": "true", "drift.ks": "false", "text.oov_rate": "true"}
    tags["embsel.monitor.status"] = "drift"
    assert monitor_description("w1", tags) == "**drift in window w1**: drift by mmd; text alerts: oov\\_rate"
    assert monitor_description("w2", {"embsel.monitor.status": "ok"}) == "**ok in window w2**: no alert"


def test_one_naming_rule_names_each_kind_and_variant_apart() -> None:
    import dataclasses

    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.identity import display_name
    from embsel_mlflow.tracking.model_entity import _entity_name
    from embsel_mlflow.tracking.run_naming import run_name

    base = ModelConfig(name="minilm", name_or_path="sentence-transformers/all-MiniLM-L6-v2")
    assert run_name(base, "stsb") == "all-MiniLM-L6-v2@stsb"
    assert run_name(dataclasses.replace(base, kind="static"), "stsb") == "static:all-MiniLM-L6-v2@stsb"
    assert run_name(dataclasses.replace(base, precision="bf16"), "stsb", context="#3") == (
        "#3 all-MiniLM-L6-v2/bf16@stsb"
    )
    from_run = dataclasses.replace(base, kind="from_run", run_id="0123456789abcdef")
    assert run_name(from_run, "stsb", context="train") == "train ft(01234567)@stsb"
    tuned = {"display_name": "all-MiniLM-L6-v2", "fine_tuned_in_run": "abcdef0123"}
    assert display_name(tuned) == "all-MiniLM-L6-v2+ft(abcdef01)"
    assert _entity_name("static:bge-small-en-v1.5/bf16") == "static\ua789bge-small-en-v1\u20245\u2215bf16"
