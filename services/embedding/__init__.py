"""Embedding service: CLIP/SigLIP encoders behind a dynamic batcher, and DEVA's hypervolume.

Importing this package is cheap (no torch): torch and transformers are imported by
:mod:`services.embedding.encoders` and :mod:`services.embedding.tiny` only.
"""
