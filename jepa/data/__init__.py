"""Data: DATA specs, sources (builtin, folders, shards), transforms and the DataModule."""

from .builtin import SHAPE_CLASSES, ShapesDataset
from .datamodule import ImageDataModule
from .spec import ImageData, open_image_data

__all__ = ["SHAPE_CLASSES", "ImageData", "ImageDataModule", "ShapesDataset", "open_image_data"]
