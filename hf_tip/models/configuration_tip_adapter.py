"""Configuration of Tip-Adapter models."""

from __future__ import annotations

import math
from typing import Literal

from .configuration_zero_shot import ZeroShotConfig, number_field

CACHE_DTYPES = (None, "float32", "bfloat16", "float16")


class TipAdapterConfig(ZeroShotConfig):
    r"""
    Configuration of a [`TipAdapterForImageClassification`]: the CLIP backbone it wraps, the size of its key-value
    cache and every hyper-parameter of the Tip-Adapter procedure (Zhang et al., ECCV 2022).

    The classifier computes `logits = s · f Wᵀ + alpha · exp(-beta · (1 - f Fᵀ)) · L` for an L2-normalised image
    feature `f`, the zero-shot text weights `W` `[C,D]`, the cache keys `F` `[NK,D]` and their one-hot values `L`
    `[NK,C]`.

    Besides these, it takes every [`ZeroShotConfig`] argument (`backbone_config`, `templates`, ...).

    Args:
        alpha (`float`, *optional*, defaults to `1.0`):
            Weight of the cache logits (residual ratio). Set by `search_hyperparameters`.
        beta (`float`, *optional*, defaults to `1.0`):
            Sharpness of the affinity `exp(-beta · (1 - cos))`. Set by `search_hyperparameters`.
        num_shots (`int`, *optional*, defaults to `16`):
            Few-shot examples per class used to build the cache.
        augment_epochs (`int`, *optional*, defaults to `10`):
            Augmented views of each few-shot image averaged into its cache key.
        cache_size (`int`, *optional*, defaults to `0`):
            Number of cache entries `NK`. Buffer shapes are set from it before the weights load.
        search_scale (`tuple[float, float]`, *optional*, defaults to `(7.0, 3.0)`):
            Upper ends `(beta_max, alpha_max)` of the hyper-parameter grid.
        search_step (`tuple[int, int]`, *optional*, defaults to `(200, 20)`):
            Grid sizes `(n_beta, n_alpha)`; values are `i · (max - 0.1) / n + 0.1` for `i < n`.
        finetune_keys (`bool`, *optional*, defaults to `False`):
            Whether the cache keys are a trainable parameter (Tip-Adapter-F) instead of a buffer.
        cache_dtype (`str`, *optional*):
            Precision the cache keys are kept and multiplied in (`"float32"`, `"bfloat16"` or `"float16"`); `None`
            (default) keeps them in the model's dtype. The key pass reads every key per image, so half-precision keys
            halve the memory read at small batches (on CPUs with bf16 support, `"bfloat16"` is the fast one); the
            affinity is returned in the model's dtype. Inference only: Tip-Adapter-F trains keys in the model's dtype.
        few_shot_seed (`int`, *optional*):
            Seed of the few-shot sample the cache was built from (`build_cache(..., num_shots=K, seed=...)`); `None`
            when the cache came from elsewhere. Fine-tuning samples the same set by default.

    Example:

    ```python
    >>> from hf_tip import TipAdapterConfig
    >>> config = TipAdapterConfig(alpha=2.0, beta=5.5, id2label={0: "cat", 1: "dog"})
    >>> config.num_labels
    2
    ```
    """

    model_type = "tip-adapter"
    field_checks = {
        "alpha": number_field(),
        "beta": number_field(),
        "num_shots": number_field(low=1, integer=True, optional=True),  # None: no longer one K-shot sample
        "augment_epochs": number_field(low=1, integer=True),
        "cache_size": number_field(low=0, high=2**62, integer=True),
    }

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        num_shots: int | None = 16,
        augment_epochs: int = 10,
        cache_size: int = 0,
        search_scale: tuple[float, float] | list[float] = (7.0, 3.0),
        search_step: tuple[int, int] | list[int] = (200, 20),
        finetune_keys: bool = False,
        few_shot_seed: int | None = None,
        cache_dtype: Literal["float32", "bfloat16", "float16"] | None = None,
        **kwargs,
    ):
        search_scale = tuple(float(v) for v in search_scale)
        search_step = tuple(search_step)
        if len(search_scale) != 2 or any(not (0.1 < v < math.inf) for v in search_scale):
            raise ValueError(
                f"`search_scale` must be two finite numbers (beta_max, alpha_max) above 0.1, got {search_scale!r}."
            )
        if len(search_step) != 2 or any(not isinstance(v, int) or v < 1 for v in search_step):
            raise ValueError(f"`search_step` must be two integers (n_beta, n_alpha) >= 1, got {search_step!r}.")

        self.alpha = alpha
        self.beta = beta
        self.num_shots = num_shots
        self.augment_epochs = augment_epochs
        self.cache_size = cache_size
        self.search_scale = list(search_scale)
        self.search_step = list(search_step)
        if few_shot_seed is not None and (not isinstance(few_shot_seed, int) or isinstance(few_shot_seed, bool)):
            raise ValueError(f"`few_shot_seed` must be an integer or None, got {few_shot_seed!r}.")
        if cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"`cache_dtype` must be one of {list(CACHE_DTYPES)}, got {cache_dtype!r}.")
        if cache_dtype is not None and finetune_keys:
            raise ValueError("`cache_dtype` is for inference; Tip-Adapter-F (`finetune_keys=True`) trains the keys.")
        self.cache_dtype = cache_dtype
        self.finetune_keys = bool(finetune_keys)
        self.few_shot_seed = few_shot_seed
        super().__init__(**kwargs)


__all__ = ["TipAdapterConfig"]
