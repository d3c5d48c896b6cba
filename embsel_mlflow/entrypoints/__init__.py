"""Entry points: compose the config, call a plain library function, log to MLflow."""
