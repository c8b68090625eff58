"""Datasets (ucf101, hmdb51, folder, list, synthetic) and train-time augmentation.

Importing this package imports neither torch nor a video backend; ``ispan_cli.data.clips`` (the
torch Dataset) does.
"""

from ispan_cli.data.catalog import DATASETS, load_dataset
from ispan_cli.data.items import DatasetSplit, VideoItem

__all__ = ["DATASETS", "DatasetSplit", "VideoItem", "load_dataset"]
