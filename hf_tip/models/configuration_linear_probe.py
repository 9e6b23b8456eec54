"""Configuration of linear-probe models."""

from __future__ import annotations

from .configuration_zero_shot import ZeroShotConfig, number_field
from .head_inputs import check_grid
from .head_linear_probe import C_GRID


class LinearProbeConfig(ZeroShotConfig):
    r"""
    Configuration of a [`LinearProbeForImageClassification`]: L2-regularised logistic regression on normalised
    image features (the CLIP paper's baseline). Besides these, it takes every [`ZeroShotConfig`] argument.

    Args:
        c (`float`, *optional*, defaults to `1.0`):
            Inverse regularisation strength (scikit-learn's `C`). Set by `search_hyperparameters`.
        c_grid (`list[float]`, *optional*, defaults to `1e-6 .. 1e6`, one per decade): the values searched.
        max_iter (`int`, *optional*, defaults to `1000`): L-BFGS iterations per fit.

    Example:

    ```python
    >>> from hf_tip import LinearProbeConfig
    >>> LinearProbeConfig(c=0.1, id2label={0: "cat", 1: "dog"}).c
    0.1
    ```
    """

    model_type = "linear-probe"
    field_checks = {
        "c": number_field(low_open=True, high=1e12),
        "max_iter": number_field(low=1, high=2**31, integer=True),
    }

    def __init__(
        self, c: float = 1.0, c_grid: list[float] | tuple[float, ...] = C_GRID, max_iter: int = 1000, **kwargs
    ):
        check_grid("c_grid", list(c_grid))
        self.c, self.c_grid, self.max_iter = c, [float(v) for v in c_grid], max_iter
        super().__init__(**kwargs)


__all__ = ["LinearProbeConfig"]
