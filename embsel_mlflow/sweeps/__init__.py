"""Hydra multirun as MLflow parent/child runs.

- ``callback``: one parent run per sweep, every job a child run (``mlflow.parentRunId``);
- ``jobs``: the parent's jobs table and best job, read back from the children in MLflow;
- ``grid``: Hydra's grid sweeper, except that a failed job does not stop the sweep;
- ``optuna_sweeper``: an Optuna sweeper on current Optuna (ask/tell, resumable sqlite studies);
- ``reuse``: a model or dataset shared by several jobs is loaded once per process;
- ``overrides``: sweep overrides in Hydra's grammar (expansion for the preflight, swept keys).
"""
