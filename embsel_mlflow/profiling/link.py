"""Link a data profile to an ``evaluate``/``select``/``train`` run, found by data digest or computed.

A profile is found when a FINISHED run in the run's experiment carries the digest of every table
the step loaded (tags ``embsel.profile.digest.<role>``): an ``embsel profile`` run, or an earlier
evaluate/select/train run that computed it. Otherwise the tables are profiled here (the same
``profile_tables`` as ``embsel profile``, without candidate tokenizers) and the profile is logged
into this run under ``profile/``, with the digest tags, so that the next run on the same data
reuses it. Either way the run gets ``embsel.profile.run_id`` (the run holding the profile),
``embsel.profile.path`` (its JSON there) and the finding counts ``embsel.profile.{error,warn,info}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from embsel_mlflow.config import ProfileConfig
    from embsel_mlflow.data.task_data import TableInfo
    from embsel_mlflow.tracking.run_logger import DatasetRef, RunLogger

log = logging.getLogger("embsel.profile")

DIGEST_TAG = "embsel.profile.digest."  # + table role: the tables a run's profile describes
RUN_ID_TAG = "embsel.profile.run_id"
PATH_TAG = "embsel.profile.path"
REUSED_TAG = "embsel.profile.reused"
LINK_ERROR_TAG = "embsel.profile.link_error"
SEVERITIES = ("error", "warn", "info")
LINKED_JSON = "profile/profile.json"  # where a computed profile goes in the run that computed it
STANDALONE_JSON = "profile.json"  # where ``embsel profile`` runs keep it


@dataclass(frozen=True)
class ProfileLink:
    """The profile a run is linked to."""

    run_id: str  # the run holding the profile JSON
    path: str  # artifact path of the JSON in that run
    reused: bool  # found by digest (True) or computed for this run (False)
    counts: dict[str, int]  # findings by severity


def link_profile(
    run: RunLogger,
    tables: Sequence[TableInfo],
    datasets: Mapping[str, DatasetRef],
    *,
    name: str,
    task: str | None,
    eval_split: str,
    cfg: ProfileConfig,
    root: str | Path = ".",
) -> ProfileLink | None:
    """Link the profile of ``tables`` to ``run``: reuse one with the same digests, else compute and log it.

    ``datasets`` are the digests ``run.log_datasets(tables, ...)`` returned (by table role). Returns
    None when ``profile.link=false``. A profile that cannot be computed does not fail the run: it
    is logged as a warning and a ``embsel.profile.link_error`` tag, and the step goes on.
    """
    if not cfg.link or not datasets:
        return None
    from embsel_mlflow.tracking.run import one_line

    try:
        link = find_profile(run, datasets) or _compute_and_log(
            run, tables, datasets, name=name, task=task, eval_split=eval_split, cfg=cfg, root=root
        )
    except Exception as exc:  # an auxiliary record: the evaluation itself must still run
        log.warning("data profile not linked: %s", one_line(exc))
        run.set_tags({LINK_ERROR_TAG: one_line(exc)})
        return None
    run.set_tags(
        {
            RUN_ID_TAG: link.run_id,
            PATH_TAG: link.path,
            REUSED_TAG: str(link.reused).lower(),
            **{f"embsel.profile.{severity}": count for severity, count in link.counts.items()},
        }
    )
    how = "reused from run" if link.reused else "computed in this run,"
    log.info(
        "data profile %s %s: %s",
        how,
        link.run_id,
        ", ".join(f"{link.counts[severity]} {severity}" for severity in SEVERITIES),
    )
    return link


def find_profile(run: RunLogger, datasets: Mapping[str, DatasetRef]) -> ProfileLink | None:
    """The newest FINISHED run in ``run``'s experiment whose profile covers every one of these digests."""
    conditions = [f"tags.`{DIGEST_TAG}{role}` = '{ref.digest}'" for role, ref in sorted(datasets.items())]
    found = run.client.search_runs(
        [run.experiment_id],
        " and ".join([*conditions, "attributes.status = 'FINISHED'"]),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not found:
        return None
    holder = found[0]
    tags = holder.data.tags
    return ProfileLink(
        run_id=holder.info.run_id,
        path=tags.get(PATH_TAG, STANDALONE_JSON),  # an evaluate-like run says where it put it
        reused=True,
        counts={severity: int(tags.get(f"embsel.profile.{severity}", 0)) for severity in SEVERITIES},
    )


def _compute_and_log(
    run: RunLogger,
    tables: Sequence[TableInfo],
    datasets: Mapping[str, DatasetRef],
    *,
    name: str,
    task: str | None,
    eval_split: str,
    cfg: ProfileConfig,
    root: str | Path,
) -> ProfileLink:
    """Profile ``tables`` (no candidate tokenizers: the data's profile, whichever model) into ``run``."""
    import dataclasses

    from embsel_mlflow.profiling.findings import severity_counts
    from embsel_mlflow.profiling.profile import profile_tables

    quiet = dataclasses.replace(cfg, show_progress=False)  # the step's own progress bar is the one shown
    profile = profile_tables(list(tables), name=name, task=task, eval_split=eval_split, cfg=quiet, root=root)
    run.log_dict(profile.to_dict(), LINKED_JSON)
    run.log_text(profile.summary() + "\n", "profile/summary.txt")
    counts = severity_counts(profile.findings)
    # the digests make this run findable as the profile of these tables
    run.set_tags({f"{DIGEST_TAG}{role}": ref.digest for role, ref in datasets.items()})
    return ProfileLink(run_id=run.run_id, path=LINKED_JSON, reused=False, counts=dict(counts))
