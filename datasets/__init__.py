"""Datasets in the project layout ``<data_dir>/<dataset>/<split>/{images,flows,labels}/<video>/``."""
from datasets.frames import FrameDataset, collate_frames
from datasets.index import DATASETS, Video, labeled_frames, scan_split
from datasets.io import read_flow, read_image, read_mask, write_mask, write_probability
from datasets.transforms import TrainAugment

__all__ = ["FrameDataset", "collate_frames", "DATASETS", "Video", "scan_split", "labeled_frames", "read_image", "read_flow",
           "read_mask", "write_mask", "write_probability", "TrainAugment"]
