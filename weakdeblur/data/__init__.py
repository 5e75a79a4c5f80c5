"""Data: samples, loaders, the embedded demo and synthetic kernels."""

from weakdeblur.data.datasets import (
    DemoDataset,
    FolderDataset,
    ImageFile,
    ImageSource,
    LevinDataset,
    ShakeDataset,
    centre_crop,
)
from weakdeblur.data.kernels import camera_shake_kernel
from weakdeblur.data.nonuniform import GoProDataset, NonUniformDataset
from weakdeblur.data.sample import DataError, Sample

__all__ = [
    "DataError",
    "DemoDataset",
    "FolderDataset",
    "GoProDataset",
    "ImageFile",
    "ImageSource",
    "LevinDataset",
    "NonUniformDataset",
    "Sample",
    "ShakeDataset",
    "camera_shake_kernel",
    "centre_crop",
]
