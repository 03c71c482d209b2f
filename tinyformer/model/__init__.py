"""Weight-sharing hybrid supernet, subnet configs, standalone subnets and supernet training."""

from tinyformer.model.blocks.mbconv import MBConvStageConfig, MBConvStageSpace
from tinyformer.model.blocks.transformer import TransformerStageConfig, TransformerStageSpace
from tinyformer.model.checkpoint import load_supernet
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.fields import ConfigError
from tinyformer.model.subnet import Subnet, load_subnet, save_subnet
from tinyformer.model.supernet import Supernet, count_parameters
from tinyformer.model.train import (
    TrainConfig,
    TrainResult,
    calibrated_subnet,
    evaluate,
    evaluate_subnet,
    train_supernet,
)

__all__ = [
    "ConfigError",
    "MBConvStageConfig",
    "MBConvStageSpace",
    "Subnet",
    "SubnetConfig",
    "Supernet",
    "SupernetSpace",
    "TrainConfig",
    "TrainResult",
    "TransformerStageConfig",
    "TransformerStageSpace",
    "calibrated_subnet",
    "count_parameters",
    "evaluate",
    "evaluate_subnet",
    "load_subnet",
    "load_supernet",
    "save_subnet",
    "train_supernet",
]
