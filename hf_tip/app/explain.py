"""Why a Tip-Adapter decided as it did: every prediction is the zero-shot score plus a weighted vote of the cache
entries, entry `j` adding `α · exp(-β (1 - f·F_j))` to the logit of its class. These pure tensor functions return
those per-entry contributions and the entries that weigh most for the predicted class and the runner-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..models.cache import affinity, cache_weights


@dataclass
class ClassEvidence:
    r"""
    The cache's vote for one class of one image.

    Args:
        class_index (`int`): the class.
        logit (`float`): its Tip-Adapter logit.
        cache_total (`float`): the sum of its entries' contributions (its cache logit times α).
        entries (`list[int]`): indices of its top cache entries, largest contribution first.
        weights (`list[float]`): their contributions `α · exp(-β (1 - a))`.
    """

    class_index: int
    logit: float
    cache_total: float
    entries: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def entry_contributions(
    image_embeds: torch.Tensor, cache_keys: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """Each cache entry's contribution α · exp(-β (1 - f Fᵀ)) to its class's logit: [B,D], [NK,D] -> [B,NK]."""
    return alpha * cache_weights(affinity(image_embeds, cache_keys), beta)


def top_entries(
    contributions: torch.Tensor, cache_labels: torch.Tensor, class_index: int, top_n: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `top_n` entries of class `class_index` with the largest contributions [NK] -> (indices [n], weights [n]),
    largest first (fewer when the class has fewer entries)."""
    members = torch.nonzero(cache_labels == class_index).flatten()  # [n_c]
    weights = contributions[members]
    order = torch.argsort(weights, descending=True, stable=True)[:top_n]
    return members[order], weights[order]


def explain_prediction(
    logits: torch.Tensor,
    image_embeds: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    alpha: float,
    beta: float,
    top_n: int = 8,
) -> list[ClassEvidence]:
    r"""
    The evidence for the predicted class and the runner-up of one image.

    Args:
        logits (`torch.FloatTensor` of shape `[C]`): the image's Tip-Adapter logits.
        image_embeds (`torch.FloatTensor` of shape `[D]`): its L2-normalised features.
        cache_keys (`torch.FloatTensor` of shape `[NK, D]`), cache_labels (`torch.LongTensor` of shape `[NK]`): the cache.
        alpha (`float`), beta (`float`): the model's hyper-parameters.
        top_n (`int`, *optional*, defaults to 8): entries kept per class.

    Returns:
        `list[ClassEvidence]`: the predicted class first, then the runner-up (one entry when there is one class).

    Example:

    ```python
    >>> evidence = explain_prediction(logits[0], embeds[0], model.cache_keys, model.cache_labels, 1.0, 5.5)
    >>> evidence[0].entries  # the cache entries that pushed hardest for the predicted class
    [12, 3, 40]
    ```
    """
    contributions = entry_contributions(image_embeds.reshape(1, -1).to(cache_keys), cache_keys, alpha, beta)[0]  # [NK]
    ranked = torch.argsort(logits, descending=True, stable=True)[:2]
    out = []
    for class_index in ranked.tolist():
        entries, weights = top_entries(contributions, cache_labels, class_index, top_n)
        total = contributions[cache_labels == class_index].sum()
        out.append(
            ClassEvidence(class_index, float(logits[class_index]), float(total), entries.tolist(), weights.tolist())
        )
    return out
