"""What runs inside an MLflow run: one module per step (below the entry points, above the libraries)."""
