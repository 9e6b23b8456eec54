"""CLIP-Adapter (Gao et al., IJCV 2023): a trained residual bottleneck MLP on CLIP's image feature."""

from __future__ import annotations

import torch
from torch import nn

from .configuration_clip_adapter import ClipAdapterConfig
from .head_clip_adapter import clip_adapter_logits, init_adapter_weights
from .modeling_zero_shot import ZeroShotForImageClassification


class ClipAdapterForImageClassification(ZeroShotForImageClassification):
    r"""
    CLIP-Adapter: `logits = s · normalize(r · A(f) + (1 - r) · f) Wᵀ` with `A(f) = ReLU(ReLU(f W₁ᵀ) W₂ᵀ)`, `W₁`
    `[D/4,D]` (`adapter_fc1`) and `W₂` `[D,D/4]` (`adapter_fc2`) bias-free. The adapter is initialised as
    `nn.Linear` is (seeded by `config.adapter_seed`) and trained by the Accelerate loop after `enable_training()`,
    with the optimiser recipe of the config.

    Example:

    ```python
    >>> from hf_tip import ClipAdapterForImageClassification
    >>> model = ClipAdapterForImageClassification.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
    >>> model.enable_training()  # only adapter_fc1 and adapter_fc2 require grad
    ```
    """

    config_class = ClipAdapterConfig
    config: ClipAdapterConfig

    def _init_head(self, config: ClipAdapterConfig, dim: int) -> None:
        generator = torch.Generator().manual_seed(config.adapter_seed)
        fc1, fc2 = init_adapter_weights(dim, config.reduction, generator=generator)
        self.adapter_fc1 = nn.Parameter(fc1)
        self.adapter_fc2 = nn.Parameter(fc2)
        self._training_enabled = False

    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """CLIP-Adapter logits [B,C] for L2-normalised features [B,D]."""
        return clip_adapter_logits(
            image_embeds,
            self.zero_shot_weights,
            self.logit_scale().to(image_embeds),
            self.adapter_fc1,
            self.adapter_fc2,
            self.config.residual_ratio,
        )

    def enable_training(self) -> ClipAdapterForImageClassification:
        """Make exactly the adapter's two weights require grad (the backbone and text weights stay frozen)."""
        self._training_enabled = True
        self._freeze()
        return self

    def _trainable_tensors(self) -> list[nn.Parameter]:
        return [self.adapter_fc1, self.adapter_fc2] if getattr(self, "_training_enabled", False) else []


__all__ = ["ClipAdapterForImageClassification"]
