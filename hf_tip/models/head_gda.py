"""GDA (Wang et al., ICLR 2024, "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation"), as pure tensor
functions.

    logits = s · f Wᵀ + α · (f Σ⁻¹ Mᵀ + b),   b_k = log p_k - ½ μ_kᵀ Σ⁻¹ μ_k

`M` [C,D] holds the class means μ_k and Σ⁻¹ [D,D] the inverse of one shared covariance. Facts from the reference
(mrflogs/ICLR24 `main_few_shots.py`; read for facts, the code here is our own):
- the samples are every augmented view of every few-shot image, each L2-normalised on its own (lines 43-53:
  `augment_epoch` passes of the same fixed-order loader, `augment_epoch: 10` in `configs/few_shots/*.yaml`);
- μ_k = mean of class k's samples (line 56);
- Σ⁻¹ = D · pinv((N - 1) · Ĉ + tr(Ĉ) · I), Ĉ = `torch.cov` (unbiased) of the class-centred samples, N their count,
  D the feature size (lines 58-60);
- uniform prior p_k = 1 / C (line 62); W = M Σ⁻¹, b = log p - ½ diag(M Σ⁻¹ Mᵀ) (lines 63-64);
- logits = 100 · f Wᵀ_text + α (f W + b), α from [1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100] on validation, the first strict
  improvement wins (lines 67-77). The reference's CLIP scale is 100 (OpenAI CLIP's); we use the backbone's.
"""

from __future__ import annotations

import math

import torch

from .cache import zero_shot_logits
from .head_inputs import check_features, check_grid, check_labels, flatten_views

ALPHA_GRID = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)  # main_few_shots.py line 70


def class_means(samples: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """μ_k, the mean of each class's samples: [N,D] -> [C,D]; a class without samples raises `ValueError`."""
    counts = torch.bincount(labels, minlength=num_classes)  # [C]
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"`labels` has no sample of class(es) {missing}: GDA needs every class's mean.")
    sums = samples.new_zeros(num_classes, samples.shape[1]).index_add(0, labels, samples)
    return sums / counts[:, None].to(samples.dtype)


def shared_precision(samples: torch.Tensor, labels: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The reference's shrunk inverse covariance Σ⁻¹ = D · pinv((N - 1) · Ĉ + tr(Ĉ) · I): [N,D] -> [D,D]."""
    num_samples, dim = samples.shape
    if num_samples < 2:
        raise ValueError("GDA needs at least 2 feature rows to estimate a covariance, got 1.")
    centred = samples - means[labels]  # [N,D], each sample minus its class mean
    cov = torch.cov(centred.t())  # [D,D], unbiased, as `center_vecs.T.cov()`
    eye = torch.eye(dim, dtype=samples.dtype, device=samples.device)
    return dim * torch.linalg.pinv((num_samples - 1) * cov + cov.trace() * eye)


def fit_gda(
    view_features: torch.Tensor, labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """The GDA head `(weight [C,D], bias [C])` from raw few-shot view features [V,N,D] and labels [N].

    Computed in `dtype` (float64 by default: Σ is inverted), returned in the features' dtype.
    """
    check_features("view_features", view_features, ndim=3)
    check_labels("labels", labels, view_features.shape[1], num_classes)
    samples, sample_labels = flatten_views(view_features.to(dtype), labels)
    means = class_means(samples, sample_labels, num_classes)  # [C,D]
    precision = shared_precision(samples, sample_labels, means)  # [D,D]
    weight = means @ precision  # [C,D] @ [D,D] -> [C,D]; Σ⁻¹ is symmetric, so row k is (Σ⁻¹ μ_k)ᵀ
    bias = math.log(1.0 / num_classes) - 0.5 * (weight * means).sum(-1)  # log p_k - ½ μ_kᵀ Σ⁻¹ μ_k: [C]
    return weight.to(view_features.dtype), bias.to(view_features.dtype)


def gda_logits(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    logit_scale: torch.Tensor | float,
    weight: torch.Tensor,
    bias: torch.Tensor,
    alpha: float,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """s · f Wᵀ (+ b₀) + α · (f Gᵀ + b): [B,D] -> [B,C] (`logit_bias`: the backbone's zero-shot bias b₀, SigLIP's);
    `alpha == 0` gives the zero-shot logits exactly."""
    clip = zero_shot_logits(image_embeds, zero_shot_weights, logit_scale, logit_bias)
    if alpha == 0:
        return clip
    return clip + alpha * (image_embeds @ weight.t() + bias)  # [B,D] @ [D,C] + [C]


@torch.no_grad()
def search_alpha(
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    logit_scale: torch.Tensor | float,
    weight: torch.Tensor,
    bias: torch.Tensor,
    alpha_grid: tuple[float, ...] | list[float] = ALPHA_GRID,
    logit_bias: torch.Tensor | None = None,
) -> dict[str, float]:
    """Best α of `alpha_grid` by accuracy on normalised validation features [N,D] with labels [N] (the logits as
    `gda_logits` computes them, `logit_bias` included); ties go to the first α in grid order (the reference's
    `if acc > best_val_acc`).

    Returns:
        `dict` with `alpha` and `accuracy` (a fraction in [0, 1]).
    """
    check_grid("alpha_grid", list(alpha_grid), positive=False)
    check_features("zero_shot_weights", zero_shot_weights)
    check_features("image_embeds", image_embeds, zero_shot_weights.shape[1])
    check_labels("labels", labels, image_embeds.shape[0], zero_shot_weights.shape[0])
    clip = zero_shot_logits(image_embeds, zero_shot_weights, logit_scale, logit_bias)  # [N,C]
    head = image_embeds @ weight.t() + bias  # [N,C]
    alphas = torch.tensor(list(alpha_grid), dtype=clip.dtype, device=clip.device)[:, None, None]  # [nA,1,1]
    logits = torch.where(alphas == 0, clip, clip + alphas * head)  # [nA,N,C], each as `gda_logits` computes it
    correct = (logits.argmax(-1) == labels).sum(-1)  # [nA]
    best = int(torch.argmax(correct))  # first maximum
    return {"alpha": float(alpha_grid[best]), "accuracy": correct[best].item() / image_embeds.shape[0]}
