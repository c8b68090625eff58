"""Pure PyTorch: model config, registry, backbones, pyramid attention, losses, model folders.

Imports nothing from the CLI side (typer, rich) and no video libraries (PyAV, OpenCV).
"""

from ispan_cli.nn.attention import AttentionOutput, PyramidAttention
from ispan_cli.nn.config import ModelConfig
from ispan_cli.nn.cost import count_parameters, model_cost
from ispan_cli.nn.losses import diversity_loss, interaction_loss
from ispan_cli.nn.model import ISTPAN, AttentionMaps
from ispan_cli.nn.registry import create_model, get_variant, list_models
from ispan_cli.nn.serialization import load_model, read_config, save_model

__all__ = [
    "ISTPAN",
    "AttentionMaps",
    "AttentionOutput",
    "ModelConfig",
    "PyramidAttention",
    "count_parameters",
    "create_model",
    "diversity_loss",
    "get_variant",
    "interaction_loss",
    "list_models",
    "load_model",
    "model_cost",
    "read_config",
    "save_model",
]
