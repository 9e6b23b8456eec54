"""The optimizer recipe of a trained head: AdamW or SGD over the parameters the model made trainable, and a cosine
learning-rate schedule with an optional constant warm-up.

The schedule, for the `t`-th step of a run of `T` steps (`lr_scheduler_unit="step"`, Tip-Adapter-F: `T` = epochs x
iterations) or the `t`-th epoch of `T` epochs (`"epoch"`, CoOp / CLIP-Adapter: stepped once per epoch):

    lr(t) = warmup_learning_rate                               for t < W (W warm-up units)
    lr(t) = learning_rate * (1 + cos(pi * (t - W) / T)) / 2    after

(with `W = 0`, Tip-Adapter-F's `CosineAnnealingLR(T)`; with `W > 0`, Dassl's `ConstantWarmupScheduler` over a cosine
of period `T` restarted after the warm-up, as CoOp and CLIP-Adapter train).
"""

from __future__ import annotations

import math

import torch

from .args import FinetuneConfig


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    """What the run trains: the parameters the model made trainable (`enable_key_finetuning()` for Tip-Adapter-F,
    `enable_training()` for other heads)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "The model has no trainable parameter: call `model.enable_key_finetuning()` (Tip-Adapter-F) or "
            "`model.enable_training()` first."
        )
    return params


def cosine_factor(unit: int, total: int, warmup: int, base_lr: float, warmup_lr: float) -> float:
    """The multiplier of `base_lr` at schedule unit `unit` (see the module docstring)."""
    if unit < warmup:
        return warmup_lr / base_lr
    return 0.5 * (1.0 + math.cos(math.pi * (unit - warmup) / total))


def create_optimizer_and_scheduler(
    model, config: FinetuneConfig, num_training_steps: int, steps_per_epoch: int | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    r"""
    The optimizer over [`trainable_parameters`] and its schedule, stepped once per training step.

    Args:
        model: with its trained parameters enabled.
        config ([`FinetuneConfig`]): the recipe (fields left at `None` take the method's values, see `resolve`).
        num_training_steps (`int`): the steps of the whole run (epochs x iterations).
        steps_per_epoch (`int`, *optional*): needed with warm-up epochs or an epoch-wise schedule.
    """
    config = config.resolve(model)
    params = trainable_parameters(model)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, eps=config.adam_epsilon, weight_decay=config.weight_decay
        )
    if not config.warmup_epochs and config.lr_scheduler_unit == "step":  # the paper's Tip-Adapter-F, exactly
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_training_steps)
    if steps_per_epoch is None:
        raise ValueError("A warm-up or an epoch-wise schedule needs `steps_per_epoch`.")
    per_epoch = config.lr_scheduler_unit == "epoch"
    total = num_training_steps // steps_per_epoch if per_epoch else num_training_steps
    warmup = config.warmup_epochs * (1 if per_epoch else steps_per_epoch)

    def factor(step: int) -> float:
        unit = step // steps_per_epoch if per_epoch else step
        return cosine_factor(unit, total, warmup, config.learning_rate, config.warmup_learning_rate)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["cosine_factor", "create_optimizer_and_scheduler", "trainable_parameters"]
