"""The thin MLflow layer: store handling, run lifecycle and what each run logs.

Library code never imports this package; entry points do.
"""
