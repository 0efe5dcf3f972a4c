"""Images in: readers (IDX), downloads checked against their MD5, one uint8 tensor per split,
and the Pillow writer of image grids, PNGs and GIFs that every later layer shares."""

from .datasets import DATASETS, Datasets, Split, load_dataset, load_split, load_test

__all__ = ["DATASETS", "Datasets", "Split", "load_dataset", "load_split", "load_test"]
