"""The Tip-Adapter formula, written once, as pure tensor functions.

    logits = s · f Wᵀ + α · exp(-β (1 - f Fᵀ)) L

`f` [B,D] are L2-normalised image features, `W` [C,D] the zero-shot text weights, `F` [NK,D] the cache keys and
`L` [NK,C] the one-hot cache values. Values are one-hot by construction, so they are stored as the class index of
each key (`cache_labels` [NK]) and `· L` is a scatter-add over classes: O(B·NK) work and memory instead of the
O(B·NK·C) of a dense matmul (512 MB for 128k entries × 1000 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension."""
    return F.normalize(features, dim=-1)


def affinity(image_embeds: torch.Tensor, cache_keys: torch.Tensor) -> torch.Tensor:
    """Cosine affinity of normalised features: [B,D] @ [D,NK] -> [B,NK], in the features' dtype. Keys kept in a
    lower precision (Tip-Adapter's `cache_dtype`) are multiplied in theirs: the features are cast, never the keys."""
    if cache_keys.dtype == image_embeds.dtype:
        return image_embeds @ cache_keys.t()
    return (image_embeds.to(cache_keys.dtype) @ cache_keys.t()).to(image_embeds.dtype)


def one_hot_values(cache_labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense cache values `L` [NK,C] from the class index of each key [NK]."""
    return F.one_hot(cache_labels, num_classes).to(dtype)


def cache_weights(affinities: torch.Tensor, beta: float) -> torch.Tensor:
    """The weight of each cache entry, exp(-β (1 - A)), for affinities A of any shape ([B,NK] -> [B,NK])."""
    return affinities.sub(1.0).mul_(beta).exp_()  # exp(β (A - 1)) = exp(-β (1 - A)) bit for bit, in one buffer


def cache_logits(
    affinities: torch.Tensor, cache_labels: torch.Tensor, num_classes: int, beta: float, keys_dim: int = -1
) -> torch.Tensor:
    """exp(-β (1 - A)) L for affinities A [B,NK] and key classes [NK] -> [B,C]; with `keys_dim=0`, for A given as
    [NK,B] -> [C,B] (the same values; the scatter-add then adds contiguous rows, several times faster)."""
    weights = cache_weights(affinities, beta)
    shape = list(weights.shape)
    shape[keys_dim] = num_classes
    return weights.new_zeros(shape).index_add(keys_dim, cache_labels, weights)  # sums each class's keys' weights


def zero_shot_logits(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Zero-shot logits s · f Wᵀ (+ b for SigLIP): [B,D] @ [D,C] -> [B,C]."""
    logits = logit_scale * (image_embeds @ zero_shot_weights.t())
    return logits if logit_bias is None else logits + logit_bias


def tip_logits(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    alpha: float,
    beta: float,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tip-Adapter logits [B,C] for normalised features [B,D] (`logit_bias`: SigLIP's zero-shot bias `b`)."""
    clip = zero_shot_logits(image_embeds, zero_shot_weights, logit_scale, logit_bias)
    if alpha == 0:
        return clip
    cache = cache_logits(affinity(image_embeds, cache_keys), cache_labels, zero_shot_weights.shape[0], beta)
    return clip + alpha * cache
