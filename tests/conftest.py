import os

# Tiny-model tests on a 2-core machine run 20-35x slower with 2 OpenMP threads under contention.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.pg import postgres_server, postgres_url  # noqa: F401  (throwaway PostgreSQL, tests/pg.py)
