"""TIP-X (SuS-X, Udandarao et al., ICCV 2023), written once, as pure tensor functions.

    logits = Tip-Adapter logits + γ · ψ(-M) L

with `M[i, j] = KL(s_i ‖ S_j)` [B,NK] between the class distributions of query `i` and cache key `j` over the text
classifier, `s = softmax(f Wᵀ / τ)` [B,C] and `S = softmax(F Wᵀ / τ)` [NK,C], and ψ the reference's rescaling:
`ψ(-M) = -scale(M)`, where `scale` maps `M` linearly from `[M_min, M_max]` onto the range `[A_min, A_max]` of the
cache affinities `A = f Fᵀ` (vishaal27/SuS-X `tipx.py`, `scale_` lines 60-66, used at lines 93-95).

Facts from the reference (`tipx.py`; read for facts, the code here is our own):
- τ = 0.5 (`--temperature`, line 139); the softmax is over `features @ text_weights / τ`, no logit scale (lines 17-25).
- KL(p ‖ q) = Σ_c p_c (log p_c - log q_c), p the query's distribution, q the key's (lines 29-43).
- the min / max of `scale_` are over the whole matrix (all queries × all keys), not per row (lines 60-66);
- logits = 100 · f Wᵀ + γ · ψ(-M) L + α · exp(-β (1 - f Fᵀ)) L (line 100);
- grid: α = i (50 - 0.1) / 20 + 0.1, β = i (50 - 1) / 200 + 1, γ = i (30 - 0.1) / 50 + 0.1 (lines 70-75), searched
  α outer, β middle, γ inner, the first strict improvement wins (lines 81-111).

Where we differ, on purpose: the reference takes `M`'s range from the set being classified and `A`'s range from the
validation set (line 117 reuses the validation affinities on the test set). A model must not let one image's logits
depend on the other images of its batch, so the four range values are measured once, on the validation set during the
search, and stored; at inference ψ is then a fixed affine map. The reference's KL loop also leaves the last partial
batch of 100 queries at zero (line 33); we compute every row.
"""

from __future__ import annotations

import torch

from .cache import affinity, cache_logits, tip_logits, zero_shot_logits
from .head_inputs import check_features, check_labels

TEMPERATURE = 0.5  # tipx.py line 139
SEARCH_SCALE = (50.0, 50.0, 30.0)  # (β_max, α_max, γ_max), tipx.py line 70
SEARCH_STEP = (200, 20, 50)  # (n_β, n_α, n_γ), tipx.py line 71


def class_log_distributions(
    features: torch.Tensor, zero_shot_weights: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """log softmax(F Wᵀ / τ) of normalised features: [N,D] @ [D,C] -> [N,C]."""
    return torch.log_softmax(features @ zero_shot_weights.t() / temperature, dim=-1)


def kl_divergence(query_log_probs: torch.Tensor, key_log_probs: torch.Tensor) -> torch.Tensor:
    """M[i, j] = KL(s_i ‖ S_j) from log-distributions [B,C] and [NK,C] -> [B,NK]."""
    probs = query_log_probs.exp()  # [B,C]
    neg_entropy = (probs * query_log_probs).sum(-1, keepdim=True)  # Σ_c s log s: [B,1]
    return neg_entropy - probs @ key_log_probs.t()  # [B,1] - [B,C] @ [C,NK] -> [B,NK]


def rescale_ranges(kl: torch.Tensor, affinities: torch.Tensor) -> torch.Tensor:
    """The four numbers ψ needs, `(M_min, M_max, A_min, A_max)` [4], over whole matrices [B,NK] (tipx.py 60-66)."""
    return torch.stack([kl.min(), kl.max(), affinities.min(), affinities.max()])


def signature_affinity(kl: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
    """ψ(-M) = -(A_min + (M - M_min) (A_max - A_min) / (M_max - M_min)) [B,NK] (tipx.py `scale_`, lines 60-66, 93-94).

    A constant `M` (`M_max == M_min`, where the reference divides by zero) maps to `-A_min`.
    """
    kl_min, kl_max, aff_min, aff_max = ranges.to(kl.dtype).unbind()
    span = kl_max - kl_min
    slope = torch.where(span > 0, (aff_max - aff_min) / torch.where(span > 0, span, 1.0), 0.0)
    return -(aff_min + (kl - kl_min) * slope)


def signature_logits(psi: torch.Tensor, cache_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """ψ(-M) L for ψ [B,NK] and key classes [NK] -> [B,C] (a scatter-add over each class's keys)."""
    return psi.new_zeros(psi.shape[0], num_classes).index_add(1, cache_labels, psi)


def tip_x_logits(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    alpha: float,
    beta: float,
    gamma: float,
    ranges: torch.Tensor,
    temperature: float = TEMPERATURE,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """TIP-X logits [B,C] for normalised features [B,D] (`logit_bias`: the backbone's zero-shot bias, SigLIP's);
    `gamma == 0` returns Tip-Adapter's logits exactly."""
    tip = tip_logits(image_embeds, zero_shot_weights, cache_keys, cache_labels, logit_scale, alpha, beta, logit_bias)
    if gamma == 0:
        return tip
    kl = kl_divergence(
        class_log_distributions(image_embeds, zero_shot_weights, temperature),
        class_log_distributions(cache_keys, zero_shot_weights, temperature),
    )  # [B,NK]
    psi = signature_affinity(kl, ranges)
    return tip + gamma * signature_logits(psi, cache_labels, zero_shot_weights.shape[0])


def search_grid(
    search_scale: tuple[float, float, float] = SEARCH_SCALE, search_step: tuple[int, int, int] = SEARCH_STEP
) -> tuple[list[float], list[float], list[float]]:
    """The reference's grids `(alphas, betas, gammas)` (tipx.py lines 73-75): β starts at 1, α and γ at 0.1; the
    upper ends are never reached."""
    if len(search_scale) != 3 or not all(float(m) > 1.0 for m in search_scale):
        raise ValueError(
            f"`search_scale` must be three numbers (beta_max, alpha_max, gamma_max) > 1, got {search_scale!r}."
        )
    if len(search_step) != 3 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in search_step
    ):
        raise ValueError(f"`search_step` must be three integers (n_beta, n_alpha, n_gamma) >= 1, got {search_step!r}.")
    (beta_max, alpha_max, gamma_max), (n_beta, n_alpha, n_gamma) = search_scale, search_step
    alphas = [i * (alpha_max - 0.1) / n_alpha + 0.1 for i in range(n_alpha)]
    betas = [i * (beta_max - 1) / n_beta + 1 for i in range(n_beta)]
    gammas = [i * (gamma_max - 0.1) / n_gamma + 0.1 for i in range(n_gamma)]
    return alphas, betas, gammas


def check_cache(zero_shot_weights: torch.Tensor, cache_keys: torch.Tensor, cache_labels: torch.Tensor) -> None:
    """Raise `ValueError` naming the tensor unless text weights [C,D], keys [NK,D] and key classes [NK] agree."""
    check_features("zero_shot_weights", zero_shot_weights)
    check_features("cache_keys", cache_keys, zero_shot_weights.shape[1])
    check_labels("cache_labels", cache_labels, cache_keys.shape[0], zero_shot_weights.shape[0])


def _signature_logits_chunk(feats, key_log_probs, cache_labels, zero_shot_weights, temperature, ranges):
    """ψ(-M) L for one chunk of validation features [b,D] -> [b,C]."""
    kl = kl_divergence(class_log_distributions(feats, zero_shot_weights, temperature), key_log_probs)
    return signature_logits(signature_affinity(kl, ranges), cache_labels, zero_shot_weights.shape[0])


@torch.no_grad()
def validation_ranges(
    image_embeds: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    temperature: float = TEMPERATURE,
    chunk: int = 4096,
) -> torch.Tensor:
    """`(M_min, M_max, A_min, A_max)` [4] over all validation features [N,D] × cache keys [NK,D], in row chunks."""
    key_log_probs = class_log_distributions(cache_keys, zero_shot_weights, temperature)  # [NK,C]
    parts = []
    for start in range(0, image_embeds.shape[0], chunk):
        feats = image_embeds[start : start + chunk]
        kl = kl_divergence(class_log_distributions(feats, zero_shot_weights, temperature), key_log_probs)
        parts.append(rescale_ranges(kl, affinity(feats, cache_keys)))
    stacked = torch.stack(parts)  # [chunks,4]
    return torch.stack([stacked[:, 0].min(), stacked[:, 1].max(), stacked[:, 2].min(), stacked[:, 3].max()])


@torch.no_grad()
def grid_search(
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    zero_shot_weights: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    temperature: float = TEMPERATURE,
    search_scale: tuple[float, float, float] = SEARCH_SCALE,
    search_step: tuple[int, int, int] = SEARCH_STEP,
    max_elements: int = 2**25,
    logit_bias: torch.Tensor | None = None,
) -> dict[str, object]:
    """Best (α, β, γ) by accuracy of the TIP-X logits (`logit_bias` included) on normalised validation features [N,D]
    with labels [N].

    ψ's ranges are measured on these features first; then, per row chunk, the signature term is computed once, the
    cache term once per β, and every (α, γ) pair is scored in one step. Ties go to the first (α, β, γ) in the
    reference's loop order (α outer, γ inner).

    Returns:
        `dict` with `alpha`, `beta`, `gamma`, `accuracy` (a fraction in [0, 1]) and `ranges` ([4], for ψ).
    """
    alphas, betas, gammas = search_grid(search_scale, search_step)
    check_cache(zero_shot_weights, cache_keys, cache_labels)
    check_features("image_embeds", image_embeds, zero_shot_weights.shape[1])
    num_classes = zero_shot_weights.shape[0]
    check_labels("labels", labels, image_embeds.shape[0], num_classes)
    ranges = validation_ranges(image_embeds, zero_shot_weights, cache_keys, temperature)
    key_log_probs = class_log_distributions(cache_keys, zero_shot_weights, temperature)
    options = {"dtype": image_embeds.dtype, "device": image_embeds.device}
    alpha_t = torch.tensor(alphas, **options)[:, None, None, None]  # [nA,1,1,1]
    gamma_t = torch.tensor(gammas, **options)[None, :, None, None]  # [1,nG,1,1]
    correct = torch.zeros(len(alphas), len(betas), len(gammas), dtype=torch.long, device=image_embeds.device)
    chunk = max(1, max_elements // max(cache_keys.shape[0], len(alphas) * len(gammas) * num_classes))
    for start in range(0, image_embeds.shape[0], chunk):
        feats, target = image_embeds[start : start + chunk], labels[start : start + chunk]
        clip = zero_shot_logits(feats, zero_shot_weights, logit_scale, logit_bias)  # [b,C]
        signature = gamma_t * _signature_logits_chunk(
            feats, key_log_probs, cache_labels, zero_shot_weights, temperature, ranges
        )  # [1,nG,b,C]
        affinities = affinity(feats, cache_keys)  # [b,NK], once per chunk
        for i, beta in enumerate(betas):
            cache = cache_logits(affinities, cache_labels, num_classes, beta)  # [b,C]
            logits = (alpha_t * cache + clip) + signature  # (clip + α·cache) + γ·sig, as `tip_x_logits` adds them
            correct[:, i, :] += (logits.argmax(-1) == target).sum(-1)  # [nA,nG]
    best = int(torch.argmax(correct.flatten()))  # first maximum in (α, β, γ) order
    a, rest = divmod(best, len(betas) * len(gammas))
    b, g = divmod(rest, len(gammas))
    accuracy = correct[a, b, g].item() / max(image_embeds.shape[0], 1)
    return {"alpha": alphas[a], "beta": betas[b], "gamma": gammas[g], "accuracy": accuracy, "ranges": ranges}
