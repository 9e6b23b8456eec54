"""Linear probe (the CLIP paper's few-shot baseline): logistic regression on normalised image features."""

from __future__ import annotations

import torch

from .cache import normalize
from .configuration_linear_probe import LinearProbeConfig
from .head_inputs import flatten_views
from .head_linear_probe import fit_logistic_regression, linear_probe_logits, search_c
from .modeling_zero_shot import ZeroShotForImageClassification


class LinearProbeForImageClassification(ZeroShotForImageClassification):
    r"""
    Linear probe: `logits = f Pᵀ + b`, an L2-regularised multinomial logistic regression (`probe_weight` `[C,D]`,
    `probe_bias` `[C]`) fitted with L-BFGS on every normalised view of the few-shot images; the zero-shot text
    weights are kept (for the card and the base) but do not enter the logits.

    Example:

    ```python
    >>> from hf_tip import LinearProbeForImageClassification
    >>> model = LinearProbeForImageClassification.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
    >>> model.fit(view_features, labels)  # [V,N,D], [N]
    >>> model.search_hyperparameters(val_embeds, val_labels)  # refits over config.c_grid, keeps the best C
    ```
    """

    config_class = LinearProbeConfig
    config: LinearProbeConfig

    def _init_head(self, config: LinearProbeConfig, dim: int) -> None:
        self.register_buffer("probe_weight", torch.zeros(config.num_labels, dim), persistent=True)
        self.register_buffer("probe_bias", torch.zeros(config.num_labels), persistent=True)
        self._train_samples: tuple[torch.Tensor, torch.Tensor] | None = None  # what `fit` saw (not saved)

    def _head_tensors(self) -> list[str]:
        return ["zero_shot_weights", "probe_weight", "probe_bias"]

    def fit(self, view_features: torch.Tensor, labels: torch.Tensor, **kwargs) -> LinearProbeForImageClassification:
        """Fit with `config.c` on raw few-shot view features [V,N,D] and labels [N]; keeps them (in memory only)
        for `search_hyperparameters`."""
        labels = torch.as_tensor(labels).to(self.probe_weight.device)
        self.check_labels(labels)
        samples, sample_labels = flatten_views(view_features.to(self.probe_weight.device), labels)
        weight, bias = fit_logistic_regression(
            samples, sample_labels, self.num_classes, self.config.c, self.config.max_iter
        )
        self._set_head(weight, bias)
        self._train_samples = (samples, sample_labels)
        return self

    def _set_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.probe_weight.copy_(weight.to(self.probe_weight))
        self.probe_bias.copy_(bias.to(self.probe_bias))

    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Logistic-regression logits [B,C] for L2-normalised features [B,D]."""
        return linear_probe_logits(image_embeds, self.probe_weight, self.probe_bias)

    @torch.no_grad()
    def search_hyperparameters(self, image_embeds: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
        """Refit for every C of `config.c_grid` on what `fit` saw, keep the best on validation features [N,D];
        writes `c` into the config and the chosen head into the model."""
        if self._train_samples is None:
            raise ValueError("`search_hyperparameters` refits the probe: call `fit(view_features, labels)` first.")
        embeds = normalize(torch.as_tensor(image_embeds).to(device=self.probe_weight.device, dtype=torch.float64))
        result = search_c(
            *self._train_samples,
            embeds,
            torch.as_tensor(labels).to(embeds.device),
            self.num_classes,
            kwargs.get("c_grid") or self.config.c_grid,
            self.config.max_iter,
        )
        self.config.c = result["c"]
        self._set_head(result.pop("weight"), result.pop("bias"))
        return result

    def _check_ready(self) -> None:
        if not self.probe_weight.any():
            raise ValueError("The linear probe is not fitted: call `fit(view_features, labels)` first.")


__all__ = ["LinearProbeForImageClassification"]
