"""Data: DATA specs, sources (builtin, folders, shards), transforms and the DataModule."""

from .builtin import SHAPE_CLASSES, ShapesDataset
from .datamodule import PretrainDataModule
from .spec import Data, open_image_data

__all__ = ["SHAPE_CLASSES", "Data", "PretrainDataModule", "ShapesDataset", "open_image_data"]
