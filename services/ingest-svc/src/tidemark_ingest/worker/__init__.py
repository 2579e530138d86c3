"""The worker: one process per run, ``tidemark-worker run RUN_ID``."""
