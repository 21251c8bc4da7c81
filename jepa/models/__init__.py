"""Plain ``nn.Module`` building blocks: encoders, predictors, patch embeddings, position embeddings."""

from .patch_embed import PatchEmbed
from .pos_embed import sincos_2d, sincos_grid
from .predictor import Predictor, PredictorConfig
from .rope import RopeBlock, rope_angles, token_coords
from .vit import VIT_SIZES, EncoderConfig, VisionTransformer, gather_tokens, layer_normed, patch_grid

__all__ = [
    "VIT_SIZES",
    "EncoderConfig",
    "PatchEmbed",
    "Predictor",
    "PredictorConfig",
    "RopeBlock",
    "VisionTransformer",
    "gather_tokens",
    "layer_normed",
    "patch_grid",
    "rope_angles",
    "sincos_2d",
    "sincos_grid",
    "token_coords",
]
