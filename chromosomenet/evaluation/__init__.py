"""Evaluation: score a model on a dataset split (``evaluate``) and run a suite of them into the
paper's tables (``benchmark``). Predictions come from ``pipeline.predict``; numbers from ``metrics``."""
