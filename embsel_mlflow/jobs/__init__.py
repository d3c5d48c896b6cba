"""What runs inside an MLflow run, one module per step, and the Hydra app machinery (``jobs.app``).

Entry points (``embsel_mlflow.entrypoints``) compose or parse and call one function here; the
libraries below (selection, training, profiling, monitoring) return whole results that a job logs.
"""
