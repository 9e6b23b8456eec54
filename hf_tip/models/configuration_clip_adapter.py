"""Configuration of CLIP-Adapter models."""

from __future__ import annotations

from typing import Literal

from .configuration_zero_shot import ZeroShotConfig, number_field
from .head_clip_adapter import REDUCTION, RESIDUAL_RATIO


class ClipAdapterConfig(ZeroShotConfig):
    r"""
    Configuration of a [`ClipAdapterForImageClassification`] (Gao et al., IJCV 2023): a residual bottleneck MLP on
    the image feature, `f' = r · A(f) + (1 - r) · f`, and its training recipe (the reference's: CoOp's Dassl
    trainer, `configs/trainers/CoOp/rn50.yaml`). Besides these, it takes every [`ZeroShotConfig`] argument.

    Args:
        reduction (`int`, *optional*, defaults to `4`): bottleneck `D -> D / reduction -> D`.
        residual_ratio (`float`, *optional*, defaults to `0.2`): `r`, the adapted feature's share.
        adapter_seed (`int`, *optional*, defaults to `0`): seed of the adapter's initial weights (`nn.Linear`'s init).
        optimizer (`"sgd"` or `"adamw"`, *optional*, defaults to `"sgd"`): the optimiser.
        learning_rate (`float`, *optional*, defaults to `2e-3`): peak learning rate.
        momentum (`float`, *optional*, defaults to `0.9`): SGD momentum (no dampening, no Nesterov).
        weight_decay (`float`, *optional*, defaults to `5e-4`): weight decay.
        batch_size (`int`, *optional*, defaults to `32`): training batch size.
        num_epochs (`int`, *optional*, defaults to `200`): training epochs.
        lr_scheduler (`"cosine"`, *optional*, defaults to `"cosine"`): cosine annealing over `num_epochs`, stepped per epoch.

    The fine-tuning loop ([`~hf_tip.training.trainer.finetune`]) trains with this recipe: it reads `optimizer`,
    `learning_rate`, `momentum`, `weight_decay`, `warmup_epochs`, `num_epochs` (as `num_train_epochs`), `warmup_lr`
    (as `warmup_learning_rate`) and the per-epoch cosine (`lr_scheduler_unit`) unless a flag overrides them.
        warmup_epochs (`int`, *optional*, defaults to `1`): epochs at the constant `warmup_lr` before the cosine.
        warmup_lr (`float`, *optional*, defaults to `1e-5`): the constant warm-up learning rate.

    Example:

    ```python
    >>> from hf_tip import ClipAdapterConfig
    >>> ClipAdapterConfig(id2label={0: "cat", 1: "dog"}).residual_ratio
    0.2
    ```
    """

    model_type = "clip-adapter"
    # the fine-tuning loop reads a method's recipe by `FinetuneConfig`'s field names (`FinetuneConfig.resolve`)
    attribute_map = {"num_train_epochs": "num_epochs", "warmup_learning_rate": "warmup_lr"}
    field_checks = {
        **{name: number_field(low=1, high=2**31, integer=True) for name in ("reduction", "batch_size", "num_epochs")},
        "warmup_epochs": number_field(low=0, high=2**31, integer=True),
        "adapter_seed": number_field(low=0, high=2**64, integer=True),
        **{name: number_field() for name in ("learning_rate", "momentum", "weight_decay", "warmup_lr")},
        "residual_ratio": number_field(high=1.0),
    }

    def __init__(
        self,
        reduction: int = REDUCTION,
        residual_ratio: float = RESIDUAL_RATIO,
        adapter_seed: int = 0,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        learning_rate: float = 2e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 32,
        num_epochs: int = 200,
        lr_scheduler: Literal["cosine"] = "cosine",
        warmup_epochs: int = 1,
        warmup_lr: float = 1e-5,
        **kwargs,
    ):
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"`optimizer` must be 'sgd' or 'adamw', got {optimizer!r}.")
        if lr_scheduler != "cosine":
            raise ValueError(f"`lr_scheduler` must be 'cosine', got {lr_scheduler!r}.")
        self.reduction, self.residual_ratio, self.adapter_seed = reduction, residual_ratio, adapter_seed
        self.optimizer, self.learning_rate, self.momentum = optimizer, learning_rate, momentum
        self.weight_decay, self.batch_size, self.num_epochs = weight_decay, batch_size, num_epochs
        self.lr_scheduler, self.warmup_epochs, self.warmup_lr = lr_scheduler, warmup_epochs, warmup_lr
        super().__init__(**kwargs)

    @property
    def lr_scheduler_unit(self) -> Literal["epoch"]:
        """How the cosine steps, by `FinetuneConfig`'s name: once per epoch (CoOp's Dassl scheduler)."""
        return "epoch"


__all__ = ["ClipAdapterConfig"]
