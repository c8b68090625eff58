"""Classifying many videos: input expansion, the batched pipeline, records and their writers."""
