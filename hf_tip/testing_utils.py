"""Test oracles: slow, literal re-implementations of the paper's procedures that tests and benchmarks check the
library against. Not used by the library itself."""

from __future__ import annotations

import torch

from .models.cache import one_hot_values, zero_shot_logits
from .models.search import search_grid


@torch.no_grad()
def reference_grid_search(
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    search_scale: tuple[float, float] = (7.0, 3.0),
    search_step: tuple[int, int] = (200, 20),
) -> dict[str, float]:
    """The paper's procedure, kept to verify and benchmark `grid_search`: a double loop over (β, α) that recomputes
    the affinity and the dense one-hot matmul for every pair."""
    betas, alphas = search_grid(search_scale, search_step)
    values = one_hot_values(cache_labels, zero_shot_weights.shape[0], image_embeds.dtype)  # [NK,C]
    clip = zero_shot_logits(image_embeds, zero_shot_weights, logit_scale)
    best_acc, best_alpha, best_beta = -1.0, alphas[0], betas[0]
    for beta in betas:
        for alpha in alphas:
            affinities = image_embeds @ cache_keys.t()
            cache = torch.exp(-beta * (1.0 - affinities)) @ values
            acc = (clip + cache * alpha).argmax(-1).eq(labels).float().mean().item()
            if acc > best_acc:
                best_acc, best_alpha, best_beta = acc, alpha, beta
    return {"alpha": best_alpha, "beta": best_beta, "accuracy": best_acc}


__all__ = ["reference_grid_search"]
