"""Attention visualisation: attention mass per input position, heatmap frames, npz, sheets."""
