"""Plain ``nn.Module`` building blocks: encoders, predictors, position embeddings."""

from .pos_embed import sincos_2d
from .predictor import Predictor, PredictorConfig
from .vit import VIT_SIZES, EncoderConfig, VisionTransformer, gather_tokens, layer_normed, patch_grid

__all__ = [
    "VIT_SIZES",
    "EncoderConfig",
    "Predictor",
    "PredictorConfig",
    "VisionTransformer",
    "gather_tokens",
    "layer_normed",
    "patch_grid",
    "sincos_2d",
]
