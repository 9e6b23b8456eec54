"""CLIP-Adapter (Gao et al., IJCV 2023), written once, as pure tensor functions.

    f' = r · A(f) + (1 - r) · f,   A(f) = ReLU(ReLU(f W₁ᵀ) W₂ᵀ),   logits = s · normalize(f') Wᵀ

`W₁` [D/4,D] and `W₂` [D,D/4] are the adapter's two bias-free linear layers, `r` the residual ratio and `W` [C,D]
the zero-shot text weights. Facts from the reference (gaopengcuhk/CLIP-Adapter `clip_adapter.py`; read for facts,
the code here is our own): `nn.Linear(c_in, c_in // reduction, bias=False)`, ReLU, `nn.Linear(c_in // reduction,
c_in, bias=False)`, ReLU (lines 55-67); reduction 4 (line 97); ratio 0.2 (line 104); the blend is applied to the
image encoder's raw output, then normalised; logits = `logit_scale.exp()` · image @ textᵀ (lines 100-115); only
the adapter is trained (lines 133-144), with cross-entropy (line 158). On another family the adapted feature is
scored as that backbone scores any feature (SigLIP: `s · cos + b`, the `logit_bias` argument).

hf-tip's heads receive L2-normalised features. Because both layers have no bias and ReLU is positively homogeneous,
A(c·f) = c·A(f) and f'(c·f) = c·f'(f) for every c > 0: the adapter on the normalised feature gives, after the final
normalisation, exactly the reference's logits on the raw feature (tested).

Training recipe of the reference (it runs CoOp's Dassl trainer with CoOp's `configs/trainers/CoOp/rn50.yaml` and
Dassl's defaults): SGD, lr 2e-3, momentum 0.9, weight decay 5e-4, no dampening, no Nesterov; batch 32; 200 epochs;
cosine annealing over 200 epochs stepped once per epoch, after 1 warm-up epoch at a constant lr of 1e-5 (with
`WARMUP_RECOUNT`, the cosine restarts after warm-up: epoch e ≥ 1 trains at 1e-3 · (1 + cos(π (e - 1) / 200))).
"""

from __future__ import annotations

import math

import torch

from .cache import normalize, zero_shot_logits

REDUCTION = 4  # clip_adapter.py line 97
RESIDUAL_RATIO = 0.2  # clip_adapter.py line 104


def adapter_shapes(dim: int, reduction: int = REDUCTION) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shapes of (W₁, W₂): ([D/r, D], [D, D/r]), as `nn.Linear(D, D // r)` then `nn.Linear(D // r, D)` store them."""
    if not (isinstance(reduction, int) and 1 <= reduction <= dim):
        raise ValueError(f"`reduction` must be an integer in [1, {dim}] (the feature size), got {reduction!r}.")
    hidden = dim // reduction
    return (hidden, dim), (dim, hidden)


def init_adapter_weights(
    dim: int, reduction: int = REDUCTION, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W₁ [D/r,D], W₂ [D,D/r]) drawn as `nn.Linear`'s default init: U(-1/√fan_in, 1/√fan_in) per layer."""
    weights = []
    for shape in adapter_shapes(dim, reduction):
        bound = 1.0 / math.sqrt(shape[1])
        weights.append((torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound)
    return weights[0], weights[1]


def adapt(
    image_embeds: torch.Tensor, fc1: torch.Tensor, fc2: torch.Tensor, ratio: float = RESIDUAL_RATIO
) -> torch.Tensor:
    """f' = r · ReLU(ReLU(f W₁ᵀ) W₂ᵀ) + (1 - r) · f: [B,D] -> [B,D/r] -> [B,D] (not normalised)."""
    hidden = torch.relu(image_embeds @ fc1.t())  # [B,D] @ [D,D/r] -> [B,D/r]
    adapted = torch.relu(hidden @ fc2.t())  # [B,D/r] @ [D/r,D] -> [B,D]
    return ratio * adapted + (1 - ratio) * image_embeds


def clip_adapter_logits(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    logit_scale: torch.Tensor | float,
    fc1: torch.Tensor,
    fc2: torch.Tensor,
    ratio: float = RESIDUAL_RATIO,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP-Adapter logits s · normalize(f') Wᵀ (+ b): [B,D] -> [B,C], the backbone's zero-shot scoring of the adapted
    feature (`logit_bias`: SigLIP's `b`); `ratio == 0` gives the zero-shot logits exactly."""
    if ratio == 0:
        return zero_shot_logits(image_embeds, zero_shot_weights, logit_scale, logit_bias)
    adapted = normalize(adapt(image_embeds, fc1, fc2, ratio))
    return zero_shot_logits(adapted, zero_shot_weights, logit_scale, logit_bias)


def reference_learning_rate(
    epoch: int, lr: float = 2e-3, epochs: int = 200, warmup_epochs: int = 1, warmup_lr: float = 1e-5
) -> float:
    """The reference's learning rate during (0-based) `epoch`: constant `warmup_lr`, then a cosine restarted after
    warm-up (Dassl `ConstantWarmupScheduler` over `CosineAnnealingLR(T_max=epochs)`, `WARMUP_RECOUNT=True`)."""
    if epoch < warmup_epochs:
        return warmup_lr
    return lr * (1 + math.cos(math.pi * (epoch - warmup_epochs) / epochs)) / 2
