"""Training loop, distributed launch, evaluation and metrics, checkpoints.

Import the submodules (they import torch); this package module itself imports nothing heavy.
"""
