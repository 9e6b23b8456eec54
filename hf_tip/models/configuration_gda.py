"""Configuration of GDA models."""

from __future__ import annotations

from .configuration_zero_shot import ZeroShotConfig, number_field
from .head_gda import ALPHA_GRID
from .head_inputs import check_grid


class GDAConfig(ZeroShotConfig):
    r"""
    Configuration of a [`GDAForImageClassification`] (Wang et al., ICLR 2024): Gaussian discriminant analysis on the
    few-shot features, ensembled with the zero-shot logits. Besides these, it takes every [`ZeroShotConfig`] argument.

    Args:
        alpha (`float`, *optional*, defaults to `1.0`):
            Weight of the GDA logits; `0` gives the zero-shot logits. Set by `search_hyperparameters`.
        alpha_grid (`list[float]`, *optional*, defaults to `[1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100]`): the reference's grid.
        augment_epochs (`int`, *optional*, defaults to `10`): augmented views per few-shot image (each one a sample).

    Example:

    ```python
    >>> from hf_tip import GDAConfig
    >>> GDAConfig(id2label={0: "cat", 1: "dog"}).alpha_grid[-1]
    100.0
    ```
    """

    model_type = "gda"
    field_checks = {"alpha": number_field(), "augment_epochs": number_field(low=1, integer=True)}

    def __init__(
        self,
        alpha: float = 1.0,
        alpha_grid: list[float] | tuple[float, ...] = ALPHA_GRID,
        augment_epochs: int = 10,
        **kwargs,
    ):
        check_grid("alpha_grid", list(alpha_grid), positive=False)
        self.alpha, self.alpha_grid, self.augment_epochs = alpha, [float(v) for v in alpha_grid], augment_epochs
        super().__init__(**kwargs)


__all__ = ["GDAConfig"]
