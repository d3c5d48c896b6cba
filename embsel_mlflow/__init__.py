"""embsel-mlflow: choose, fine-tune, evaluate and monitor embedding models, tracked in MLflow.

The package root stays import-light on purpose: ``embsel --help`` must be fast, so torch,
transformers and sentence-transformers are imported only inside the functions that need them.
"""

__version__ = "0.1.0"
