"""Inputs of the method heads (`head_*.py`): checks that name the tensor they reject (before anything is written),
and the few-shot views flattened into samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_features(name: str, features: torch.Tensor, dim: int | None = None, ndim: int = 2) -> None:
    """Raise `ValueError` unless `features` is a non-empty, finite, floating tensor of `ndim` dims (last one `dim`)."""
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point torch.Tensor, got {type(features).__name__}.")
    if features.ndim != ndim or features.numel() == 0:
        raise ValueError(f"`{name}` must be a non-empty {ndim}-D tensor, got shape {tuple(features.shape)}.")
    if dim is not None and features.shape[-1] != dim:
        raise ValueError(f"`{name}` must have feature size {dim} (the text weights'), got {features.shape[-1]}.")
    if not torch.isfinite(features).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    zero = ~features.reshape(-1, features.shape[-1]).any(dim=-1)
    if bool(zero.any()):  # an all-zero row has no direction: it would fit or score as a uniform guess
        rows = zero.nonzero().flatten().tolist()
        raise ValueError(
            f"`{name}` has {len(rows)} all-zero feature rows (first: {rows[:5]}, counted over the flattened leading "
            "dims); a feature of zero norm has no direction, so nothing could be fitted or scored on it."
        )


def check_labels(name: str, labels: torch.Tensor, num_rows: int, num_classes: int) -> None:
    """Raise `ValueError` unless `labels` is an integer tensor [num_rows] with values in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"`{name}` must be an integer torch.Tensor of class indices, got {type(labels).__name__}.")
    if labels.shape != (num_rows,):
        raise ValueError(
            f"`{name}` must have shape ({num_rows},), one class index per feature row, got {tuple(labels.shape)}."
        )
    if num_rows and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`{name}` must be class indices in [0, {num_classes}), got values {labels.min().item()}..{labels.max().item()}."
        )


def check_grid(name: str, values: list[float] | tuple[float, ...], positive: bool = True) -> None:
    """Raise `ValueError` unless `values` is a non-empty sequence of finite numbers (> 0 when `positive`)."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"`{name}` must be a non-empty list of numbers, got {values!r}.")
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value != value
            or abs(value) == float("inf")
        ):
            raise ValueError(f"`{name}` must hold finite numbers, got {value!r}.")
        if positive and value <= 0:
            raise ValueError(f"`{name}` must hold numbers > 0, got {value!r}.")


def flatten_views(view_features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise each view on its own and stack them as samples: [V,N,D] and labels [N] -> [V·N,D] and [V·N]
    (view-major, as the references' augmentation passes)."""
    check_features("view_features", view_features, ndim=3)
    samples = F.normalize(view_features, dim=-1).reshape(-1, view_features.shape[-1])
    return samples, labels.repeat(view_features.shape[0])
