"""``embsel compare``'s library: the runs of an experiment, a sweep or a list of ids, as one table.

Built on ``mlflow.search_runs``, so it works against sqlite, a file store or a tracking server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "csv", "markdown")


def search(args: Any) -> pd.DataFrame:
    """The runs ``args`` select (``--experiment`` / ``--parent`` / ``--runs``, ``--filter``,
    ``--tracking-uri``, ``--max-results``), as ``mlflow.search_runs`` returns them."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # mlflow.search_runs reads the process-wide tracking URI: set it for this call only, so a
    # library caller (or the next in-process command) keeps its own.
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_store(uri, must_exist=True)
    clauses = [args.filter] if args.filter.strip() else []
    experiment_ids: list[str] | None = None
    try:
        if args.parent:
            experiment_ids = [client.get_run(args.parent).info.experiment_id]
            clauses.append(f"tags.`mlflow.parentRunId` = '{args.parent}'")
        elif args.runs:
            experiment_ids = sorted({client.get_run(run_id).info.experiment_id for run_id in args.runs})
            clauses.append("attributes.run_id IN (" + ", ".join(f"'{r}'" for r in args.runs) + ")")
        elif args.experiment:
            experiment_ids = []
            for name in args.experiment:
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise ConfigError(
                        f"no experiment named '{name}' in {uri}; list them with `mlflow experiments search`"
                    )
                experiment_ids.append(experiment.experiment_id)
        with _use_tracking_uri(uri):
            return mlflow.search_runs(
                experiment_ids=experiment_ids,
                filter_string=" and ".join(clauses),  # MLflow's filter grammar has AND only
                max_results=args.max_results,
                search_all_experiments=experiment_ids is None,
            )
    except MlflowException as exc:
        raise ConfigError(f"{exc.message.splitlines()[0]} (tracking store: {uri})") from exc


def runs_table(runs: pd.DataFrame, args: Any) -> pd.DataFrame:
    """Columns run id, name, status, then the chosen metrics, params and tags; sorted."""
    import pandas as pd

    columns = {"run_id": "run_id", "tags.mlflow.runName": "run_name", "status": "status"}
    for prefix, keys in (("metrics", args.metrics), ("params", args.params), ("tags", args.tags)):
        for key in keys:
            columns[f"{prefix}.{key}"] = key if key not in columns.values() else f"{prefix}.{key}"
    empty = pd.Series([None] * len(runs), index=runs.index, dtype=object)
    table = pd.DataFrame({name: runs.get(source, empty) for source, name in columns.items()})
    sort = args.sort or (args.metrics[0] if args.metrics else None)
    if sort:
        if sort not in table:
            raise ConfigError(f"--sort {sort}: not a column; choose one of {', '.join(table.columns)}")
        table = table.sort_values(sort, ascending=args.ascending, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def render(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    text = table.astype(object).map(lambda v: f"{v:.6g}" if isinstance(v, float) else v)
    text = text.where(table.notna(), "")
    if fmt == "markdown":
        header = "| " + " | ".join(map(str, text.columns)) + " |"
        rule = "|" + "|".join("---" for _ in text.columns) + "|"
        rows = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in text.to_numpy()]
        return "\n".join([header, rule, *rows]) + "\n"
    return text.to_string(index=False) + "\n"


def write_output(path: str, text: str) -> None:
    """Write the table to ``path``; a folder that is missing or unwritable is one line."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot write --output {path} ({reason}); create its folder first or choose another path"
        ) from exc
