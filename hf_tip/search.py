"""Vectorised α/β grid search on validation features, and the paper's double loop it replaces."""

from __future__ import annotations

import torch

from .cache import affinity, cache_logits, one_hot_values, zero_shot_logits


def search_grid(search_scale: tuple[float, float], search_step: tuple[int, int]) -> tuple[list[float], list[float]]:
    """The paper's grid: `i · (max - 0.1) / n + 0.1` for `i < n`, β first then α (the upper end is never reached)."""
    (beta_max, alpha_max), (n_beta, n_alpha) = search_scale, search_step
    if not (beta_max > 0.1 and alpha_max > 0.1):
        raise ValueError(f"`search_scale` must be two numbers (beta_max, alpha_max) above 0.1, got {search_scale!r}.")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (n_beta, n_alpha)):
        raise ValueError(f"`search_step` must be two integers (n_beta, n_alpha) >= 1, got {search_step!r}.")
    betas = [i * (beta_max - 0.1) / n_beta + 0.1 for i in range(n_beta)]
    alphas = [i * (alpha_max - 0.1) / n_alpha + 0.1 for i in range(n_alpha)]
    return betas, alphas


@torch.no_grad()
def grid_search(
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    search_scale: tuple[float, float] = (7.0, 3.0),
    search_step: tuple[int, int] = (200, 20),
    max_elements: int = 2**25,
) -> dict[str, float]:
    """Best (α, β) by accuracy of the Tip logits on normalised features [N,D] with labels [N].

    The affinity of each row chunk is computed once; for each β the cache logits are computed once and every α is
    scored in one step. Rows are chunked so that no intermediate holds more than `max_elements` values. Ties go to
    the first (β, α) in grid order, as in the paper's loop (`if acc > best_acc`).

    Returns:
        `dict` with `alpha`, `beta` and `accuracy` (a fraction in [0, 1]).
    """
    betas, alphas = search_grid(search_scale, search_step)
    num_samples, num_classes = image_embeds.shape[0], zero_shot_weights.shape[0]
    alpha_t = torch.tensor(alphas, dtype=image_embeds.dtype, device=image_embeds.device)[:, None, None]  # [nA,1,1]
    correct = torch.zeros(len(betas), len(alphas), dtype=torch.long, device=image_embeds.device)
    width = max(cache_keys.shape[0], len(alphas) * num_classes)
    chunk = max(1, max_elements // width)
    for start in range(0, num_samples, chunk):
        feats, target = image_embeds[start : start + chunk], labels[start : start + chunk]
        clip = zero_shot_logits(feats, zero_shot_weights, logit_scale)  # [b,C]
        affinities = (
            affinity(feats, cache_keys).t().contiguous()
        )  # [NK,b], once per chunk; keys-major, so each β adds contiguous rows
        for i, beta in enumerate(betas):
            cache = cache_logits(affinities, cache_labels, num_classes, beta, keys_dim=0).t().contiguous()  # [b,C]
            logits = (alpha_t * cache).add_(clip)  # every α at once, in one [nA,b,C] buffer (= clip + α·cache)
            correct[i] += (logits.argmax(-1) == target).sum(-1)
    best = int(torch.argmax(correct.flatten()))  # first maximum in (β, α) order
    i, j = divmod(best, len(alphas))
    return {"alpha": alphas[j], "beta": betas[i], "accuracy": correct[i, j].item() / max(num_samples, 1)}


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
