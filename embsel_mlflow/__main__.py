"""``python -m embsel_mlflow`` is the ``embsel`` CLI."""

from embsel_mlflow.cli import main

if __name__ == "__main__":
    main()
