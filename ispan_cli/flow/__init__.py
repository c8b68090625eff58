"""Optical flow extraction (``ispan flow extract``): TV-L1 and DIS through OpenCV, RAFT through
torchvision on a GPU, written in the layouts of ``ispan_cli.data.flow_format``.

Importing this package imports neither OpenCV, PyAV nor torch.
"""
