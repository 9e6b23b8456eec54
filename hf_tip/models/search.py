"""Vectorised α/β grid search on validation features (the paper's double loop, kept as a test oracle, lives in
`hf_tip.testing_utils.reference_grid_search`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .cache import affinity, cache_logits, zero_shot_logits
from .head_inputs import check_features

MAX_GRID_CELLS = 10**6  # n_beta · n_alpha; the paper's grids have 4,000 cells, and each cell costs one int64


def check_search_grid(search_scale: Sequence[float], search_step: Sequence[int]) -> None:
    """Raise a `ValueError` naming `search_scale` / `search_step` unless they are two finite numbers above 0.1 and two
    integers >= 1 whose product is at most `MAX_GRID_CELLS`. Cheap: call it before any work or any write."""
    scale, step = _pair(search_scale, "search_scale"), _pair(search_step, "search_step")
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0.1 for v in scale
    ):
        raise ValueError(
            f"`search_scale` must be two finite numbers (beta_max, alpha_max) above 0.1, got {list(scale)!r}."
        )
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in step):
        raise ValueError(f"`search_step` must be two integers (n_beta, n_alpha) >= 1, got {list(step)!r}.")
    if step[0] * step[1] > MAX_GRID_CELLS:
        raise ValueError(
            f"`search_step` {list(step)!r} asks for {step[0] * step[1]:,} (beta, alpha) pairs; at most "
            f"{MAX_GRID_CELLS:,} are allowed (the paper uses 200 x 20)."
        )


def _pair(values, name: str) -> tuple:
    """`values` as a 2-tuple, or a `ValueError` naming `name`."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 2:
        raise ValueError(f"`{name}` must hold exactly two values, got {values!r}.")
    return tuple(values)


def search_grid(search_scale: Sequence[float], search_step: Sequence[int]) -> tuple[list[float], list[float]]:
    """The paper's grid: `i · (max - 0.1) / n + 0.1` for `i < n`, β first then α (the upper end is never reached)."""
    check_search_grid(search_scale, search_step)
    (beta_max, alpha_max), (n_beta, n_alpha) = search_scale, search_step
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
    if image_embeds.shape[0] == 0:
        raise ValueError("No validation features to search alpha/beta on (`image_embeds` is empty).")
    check_features("image_embeds", image_embeds)  # finite, no all-zero row (it would score as a uniform guess)
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
    return {"alpha": alphas[j], "beta": betas[i], "accuracy": correct[i, j].item() / num_samples}
