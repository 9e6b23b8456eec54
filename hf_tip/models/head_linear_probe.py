"""Linear probe (Radford et al., 2021, the CLIP paper's few-shot baseline), as pure tensor functions.

    logits = f Wᵀ + b,   (W, b) = argmin  mean_i CE(W f_i + b, y_i) + ‖W‖² / (2 · C · N)

an L2-regularised multinomial logistic regression on L2-normalised features: the objective of scikit-learn's
`LogisticRegression(penalty="l2", C=C)` (½‖W‖² + C · Σ_i CE, the intercept not penalised) divided by C · N, which
has the same minimiser. The CLIP paper fits it with L-BFGS and chooses C on validation (it sweeps 10⁻⁶..10⁶; CoOp's
`lpclip/linear_probe.py` starts from the decades [1e6, 1e4, ..., 1e-6] then bisects); here it is fitted with
torch's full-batch L-BFGS in float64 (deterministic) over a fixed log grid, ascending, each fit warm-started from the
previous one, the first best C winning (the strongest regularisation among ties).

Softmax ignores a constant added to every class's logit, so the unpenalised intercept is only defined up to one;
the fitted bias is centred (mean 0) to make the head unique.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .head_inputs import check_features, check_grid, check_labels

C_GRID = tuple(10.0**e for e in range(-6, 7))  # 1e-6 .. 1e6, one per decade (the CLIP paper's range)


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    c: float,
    max_iter: int = 1000,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit `(weight [C,D], bias [C])` on normalised features [N,D] with labels [N] for regularisation strength `c`.

    Full-batch L-BFGS (strong Wolfe line search) in float64 from zeros or `init`; returned in float64, bias centred.
    """
    check_features("features", features)
    check_labels("labels", labels, features.shape[0], num_classes)
    check_grid("c", [c])
    x = features.to(torch.float64)
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, device=x.device)
    bias = torch.zeros(num_classes, dtype=torch.float64, device=x.device)
    if init is not None:
        weight, bias = init[0].to(weight).clone(), init[1].to(bias).clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    penalty = 1.0 / (2.0 * c * x.shape[0])
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.t() + bias, labels) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return weight, bias - bias.mean()


def linear_probe_logits(image_embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """f Wᵀ + b: [B,D] @ [D,C] + [C] -> [B,C]."""
    return image_embeds @ weight.t() + bias


@torch.no_grad()
def search_c(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    image_embeds: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    c_grid: tuple[float, ...] | list[float] = C_GRID,
    max_iter: int = 1000,
) -> dict[str, object]:
    """Best C of `c_grid` by validation accuracy: fit on normalised training features [N,D] (labels [N]), score on
    normalised validation features [M,D] (labels [M]). The grid is swept in ascending order, each fit warm-started
    from the previous; ties go to the smallest C.

    Returns:
        `dict` with `c`, `accuracy` (a fraction in [0, 1]), `weight` [C,D] and `bias` [C] of the chosen fit (float64).
    """
    check_grid("c_grid", list(c_grid))
    check_features("train_features", train_features)
    check_labels("train_labels", train_labels, train_features.shape[0], num_classes)
    check_features("image_embeds", image_embeds, train_features.shape[1])
    check_labels("labels", labels, image_embeds.shape[0], num_classes)
    best: dict[str, object] = {"accuracy": -1.0}
    head = None
    for c in sorted(c_grid):
        head = fit_logistic_regression(train_features, train_labels, num_classes, c, max_iter, init=head)
        predictions = linear_probe_logits(image_embeds.to(torch.float64), *head).argmax(-1)
        accuracy = (predictions == labels).double().mean().item()
        if accuracy > best["accuracy"]:
            best = {"c": float(c), "accuracy": accuracy, "weight": head[0], "bias": head[1]}
    return best
