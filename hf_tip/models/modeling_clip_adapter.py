"""CLIP-Adapter (Gao et al., IJCV 2023): a trained residual bottleneck MLP on CLIP's image feature."""

from __future__ import annotations

import torch
from torch import nn

from .configuration_clip_adapter import ClipAdapterConfig
from .head_clip_adapter import clip_adapter_logits, init_adapter_weights
from .head_inputs import check_features, check_labels
from .modeling_zero_shot import ZeroShotForImageClassification


class ClipAdapterForImageClassification(ZeroShotForImageClassification):
    r"""
    CLIP-Adapter: `logits = s · normalize(r · A(f) + (1 - r) · f) Wᵀ (+ b, SigLIP)` with `A(f) = ReLU(ReLU(f W₁ᵀ) W₂ᵀ)`, `W₁`
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
        """CLIP-Adapter logits [B,C] for L2-normalised features [B,D] (the adapted feature scored as the backbone
        scores any: `s · cos`, SigLIP `s · cos + b`)."""
        scale, bias = self._scale_and_bias(image_embeds)
        fc1, fc2, ratio = self.adapter_fc1, self.adapter_fc2, self.config.residual_ratio
        return clip_adapter_logits(image_embeds, self.zero_shot_weights, scale, fc1, fc2, ratio, bias)

    def fit(self, view_features: torch.Tensor, labels: torch.Tensor, **kwargs) -> ClipAdapterForImageClassification:
        """Nothing to fit without training (the adapter trains after `enable_training()`); the few-shot views [V,N,D]
        and labels [N] are checked here, as every method's `fit` does, so a bad set fails before the loop."""
        check_features("view_features", view_features, dim=self.feature_dim, ndim=3)
        check_labels("labels", labels, view_features.shape[1], self.num_classes)
        return self

    def search_hyperparameters(self, image_embeds: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
        """No hyper-parameter is searched: the accuracy on checked validation features [N,D] with labels [N]."""
        check_features("image_embeds", image_embeds, dim=self.feature_dim)
        check_labels("labels", labels, image_embeds.shape[0], self.num_classes)
        return super().search_hyperparameters(image_embeds, labels, **kwargs)

    def enable_training(self) -> ClipAdapterForImageClassification:
        """Make exactly the adapter's two weights require grad (the backbone and text weights stay frozen)."""
        self._training_enabled = True
        self._freeze()
        return self

    def _trainable_tensors(self) -> list[nn.Parameter]:
        return [self.adapter_fc1, self.adapter_fc2] if getattr(self, "_training_enabled", False) else []


__all__ = ["ClipAdapterForImageClassification"]
