"""Configuration of TIP-X models."""

from __future__ import annotations

from .configuration_tip_adapter import TipAdapterConfig
from .configuration_zero_shot import number_field
from .head_tip_x import SEARCH_SCALE, SEARCH_STEP, TEMPERATURE, search_grid


class TipXConfig(TipAdapterConfig):
    r"""
    Configuration of a [`TipXForImageClassification`]: Tip-Adapter's (every [`TipAdapterConfig`] argument) plus
    TIP-X's signature term (SuS-X, Udandarao et al., ICCV 2023): `logits = Tip-Adapter logits + gamma · ψ(-M) · L`.

    Args:
        gamma (`float`, *optional*, defaults to `0.0`):
            Weight of the signature (KL) term; `0` gives Tip-Adapter's logits exactly. Set by `search_hyperparameters`.
        signature_temperature (`float`, *optional*, defaults to `0.5`):
            Temperature of the class distributions `softmax(f Wᵀ / τ)` (the reference's).
        tip_x_search_scale (`tuple[float, float, float]`, *optional*, defaults to `(50.0, 50.0, 30.0)`):
            Upper ends `(beta_max, alpha_max, gamma_max)` of the reference's grid.
        tip_x_search_step (`tuple[int, int, int]`, *optional*, defaults to `(200, 20, 50)`):
            Grid sizes `(n_beta, n_alpha, n_gamma)`.

    Example:

    ```python
    >>> from hf_tip import TipXConfig
    >>> TipXConfig(gamma=2.0, id2label={0: "cat", 1: "dog"}).model_type
    'tip-x'
    ```
    """

    model_type = "tip-x"
    field_checks = {"gamma": number_field(), "signature_temperature": number_field(low_open=True)}

    def __init__(
        self,
        gamma: float = 0.0,
        signature_temperature: float = TEMPERATURE,
        tip_x_search_scale: tuple[float, float, float] | list[float] = SEARCH_SCALE,
        tip_x_search_step: tuple[int, int, int] | list[int] = SEARCH_STEP,
        **kwargs,
    ):
        search_grid(tuple(float(v) for v in tip_x_search_scale), tuple(tip_x_search_step))  # raises naming the field
        self.gamma = gamma
        self.signature_temperature = signature_temperature
        self.tip_x_search_scale = [float(v) for v in tip_x_search_scale]
        self.tip_x_search_step = list(tip_x_search_step)
        super().__init__(**kwargs)


__all__ = ["TipXConfig"]
