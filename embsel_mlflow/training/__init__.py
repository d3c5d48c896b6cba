"""Fine-tuning (``embsel train``): pairs from a task's train split, a loss, SentenceTransformerTrainer.

No MLflow and no Hydra here: ``entrypoints/train.py`` wires a run around it, and the project's
own evaluation tasks score the validation split during training (``evaluator.py``). Image–text
dual encoders (CLIP, SigLIP) train contrastively on (image, caption) pairs in ``contrastive.py``.
"""
