"""FSDP for the big encoders (ViT-H, ViT-g): shard, wrap and checkpoint activations per block."""

from __future__ import annotations

from typing import Any, Literal

from pytorch_lightning.strategies import FSDPStrategy, StrategyRegistry


class BlockFSDPStrategy(FSDPStrategy):
    """Lightning's FSDPStrategy with the settings JEPA models want.

    Every timm transformer block (of the encoder, the EMA target and the predictor) is its own FSDP
    unit, recomputed in the backward pass when ``activation_checkpointing`` is on. ``use_orig_params``
    keeps parameter names and lets one unit mix trainable and frozen parameters (the root holds
    both encoders' patch embeddings). Mixed precision follows ``trainer.precision`` (bf16-mixed).

    Args:
        activation_checkpointing: recompute each block in the backward pass.
        sharded_checkpoints: write sharded checkpoints (a folder per checkpoint, one file per rank);
            ``jepa export`` reads them. Otherwise a full checkpoint is gathered on rank 0.
        sharding_strategy: FULL_SHARD, SHARD_GRAD_OP, HYBRID_SHARD or NO_SHARD.
    """

    def __init__(
        self,
        activation_checkpointing: bool = True,
        sharded_checkpoints: bool = True,
        sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = "FULL_SHARD",
        **kwargs: Any,
    ) -> None:
        from timm.models.vision_transformer import Block

        super().__init__(
            auto_wrap_policy={Block},
            activation_checkpointing_policy={Block} if activation_checkpointing else None,
            state_dict_type="sharded" if sharded_checkpoints else "full",
            sharding_strategy=sharding_strategy,
            use_orig_params=True,
            **kwargs,
        )


# A short name, so that ``--trainer.strategy jepa_fsdp`` works like ``ddp`` or ``fsdp`` (Lightning
# lower-cases strategy strings, so a dotted class path given as a plain string is not found).
STRATEGY_NAME = "jepa_fsdp"
if STRATEGY_NAME not in StrategyRegistry:
    StrategyRegistry.register(
        STRATEGY_NAME, BlockFSDPStrategy, description="FSDP per transformer block with activation checkpointing"
    )
