"""GDA (Wang et al., ICLR 2024): a training-free Gaussian discriminant analysis head ensembled with zero-shot CLIP."""

from __future__ import annotations

import torch

from .cache import normalize
from .configuration_gda import GDAConfig
from .head_gda import fit_gda, gda_logits, search_alpha
from .modeling_zero_shot import ZeroShotForImageClassification


class GDAForImageClassification(ZeroShotForImageClassification):
    r"""
    GDA: `logits = s · f Wᵀ (+ b₀, SigLIP) + alpha · (f Gᵀ + b)`, with the linear head `G` `[C,D]` (`gda_weight`, rows Σ⁻¹μ_k) and
    `b` `[C]` (`gda_bias`, log p_k - ½ μ_kᵀΣ⁻¹μ_k) of a Gaussian discriminant analysis on the few-shot view features
    (class means, one shared shrunk covariance: the reference's estimator).

    Example:

    ```python
    >>> from hf_tip import GDAForImageClassification
    >>> model = GDAForImageClassification.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
    >>> model.fit(view_features, labels)  # [V,N,D], [N]
    >>> model.search_hyperparameters(val_embeds, val_labels)  # writes alpha into the config
    ```
    """

    config_class = GDAConfig
    config: GDAConfig

    def _init_head(self, config: GDAConfig, dim: int) -> None:
        self.register_buffer("gda_weight", torch.zeros(config.num_labels, dim), persistent=True)
        self.register_buffer("gda_bias", torch.zeros(config.num_labels), persistent=True)

    def _head_tensors(self) -> list[str]:
        return ["zero_shot_weights", "gda_weight", "gda_bias"]

    def fit(self, view_features: torch.Tensor, labels: torch.Tensor, **kwargs) -> GDAForImageClassification:
        """The GDA head from raw few-shot view features [V,N,D] (each view one sample) and labels [N]."""
        labels = torch.as_tensor(labels)
        self.check_labels(labels)
        weight, bias = fit_gda(
            view_features.to(self.gda_weight.device), labels.to(self.gda_weight.device), self.num_classes
        )
        self.gda_weight.copy_(weight)
        self.gda_bias.copy_(bias)
        self.config.augment_epochs = view_features.shape[0]
        return self

    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Zero-shot plus `alpha` times the GDA logits, [B,C], for L2-normalised features [B,D]."""
        scale, bias = self._scale_and_bias(image_embeds)
        weight, gda_bias = self.gda_weight, self.gda_bias
        return gda_logits(image_embeds, self.zero_shot_weights, scale, weight, gda_bias, self.config.alpha, bias)

    @torch.no_grad()
    def search_hyperparameters(self, image_embeds: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
        """Choose `alpha` from `config.alpha_grid` on validation features [N,D]; writes it into the config."""
        self._check_ready()
        embeds = normalize(torch.as_tensor(image_embeds).to(self.zero_shot_weights))
        scale, bias = self._scale_and_bias(embeds)
        result = search_alpha(
            embeds,
            torch.as_tensor(labels).to(embeds.device),
            self.zero_shot_weights,
            scale,
            self.gda_weight,
            self.gda_bias,
            kwargs.get("alpha_grid") or self.config.alpha_grid,
            logit_bias=bias,
        )
        self.config.alpha = result["alpha"]
        return result

    def _check_ready(self) -> None:
        if not self.gda_weight.any():
            raise ValueError("The GDA head is empty: call `fit(view_features, labels)` first.")


__all__ = ["GDAForImageClassification"]
