"""TIP-X (SuS-X, Udandarao et al., ICCV 2023): Tip-Adapter's cache plus a KL "signature" affinity term."""

from __future__ import annotations

import torch

from .cache import normalize
from .configuration_tip_x import TipXConfig
from .head_tip_x import class_log_distributions, grid_search, kl_divergence, rescale_ranges, tip_x_logits
from .modeling_tip_adapter import TipAdapterForImageClassification


class TipXForImageClassification(TipAdapterForImageClassification):
    r"""
    TIP-X: `logits = s · f Wᵀ (+ b, SigLIP) + alpha · exp(-beta (1 - f Fᵀ)) · L + gamma · ψ(-M) · L`, with `M[i, j]`
    the KL divergence between the class distributions of image `i` and cache key `j` over the text classifier and ψ the
    reference's rescaling of `-M` onto the range of the cache affinities. The ranges ψ uses are a persistent buffer
    (`signature_ranges` `[4]`): measured on the cache itself whenever it changes, on validation by `search_hyperparameters`.

    Example:

    ```python
    >>> from hf_tip import TipXForImageClassification
    >>> model = TipXForImageClassification.from_clip("openai/clip-vit-base-patch16", ["cat", "dog"])
    >>> model.fit(view_features, labels)  # [V,N,D], [N]
    >>> model.search_hyperparameters(val_embeds, val_labels)  # writes alpha, beta, gamma into the config
    ```
    """

    config_class = TipXConfig
    config: TipXConfig

    def _init_head(self, config: TipXConfig, dim: int) -> None:
        super()._init_head(config, dim)
        self.register_buffer("signature_ranges", torch.zeros(4), persistent=True)

    def _head_tensors(self) -> list[str]:
        return [*super()._head_tensors(), "signature_ranges"]

    def _cache_changed(self) -> None:
        """ψ's ranges from the keys against themselves (the reference's `train_kl_divs_sim`), refreshed whenever the
        cache changes (`fit`, `build_cache`, `set_cache`, live updates) until `search_hyperparameters` measures them
        on validation."""
        super()._cache_changed()
        if self.cache_keys.shape[0] == 0:
            return
        keys = self.cache_keys.detach().float()
        log_probs = class_log_distributions(keys, self.zero_shot_weights.float(), self.config.signature_temperature)
        ranges = rescale_ranges(kl_divergence(log_probs, log_probs), keys @ keys.t())
        self.signature_ranges.copy_(ranges.to(self.signature_ranges))

    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """TIP-X logits [B,C] for L2-normalised features [B,D]."""
        scale, bias = self._scale_and_bias(image_embeds)
        return tip_x_logits(
            image_embeds,
            self.zero_shot_weights,
            self.cache_keys,
            self.cache_labels,
            scale,
            self.config.alpha,
            self.config.beta,
            self.config.gamma,
            self.signature_ranges,
            self.config.signature_temperature,
            bias,
        )

    @torch.no_grad()
    def search_hyperparameters(self, image_embeds: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict:
        """Grid-search `alpha`, `beta` and `gamma` on validation features [N,D] (the reference's grids, from the
        config), in float32; writes them and ψ's validation ranges into the model. Returns the search's `dict`."""
        self._check_ready()
        embeds = normalize(torch.as_tensor(image_embeds).to(device=self.zero_shot_weights.device, dtype=torch.float32))
        scale, bias = self._scale_and_bias(embeds)
        result = grid_search(
            embeds,
            torch.as_tensor(labels).to(embeds.device),
            self.zero_shot_weights.float(),
            self.cache_keys.detach().float(),
            self.cache_labels,
            scale,
            self.config.signature_temperature,
            tuple(kwargs.get("search_scale") or self.config.tip_x_search_scale),
            tuple(kwargs.get("search_step") or self.config.tip_x_search_step),
            logit_bias=bias,
        )
        self.config.alpha, self.config.beta, self.config.gamma = result["alpha"], result["beta"], result["gamma"]
        self.signature_ranges.copy_(result["ranges"].to(self.signature_ranges))
        return result


__all__ = ["TipXForImageClassification"]
