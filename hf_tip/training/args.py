"""The hyper-parameters of a fine-tuning run ([`FinetuneConfig`]), declared once: the library, `hf-tip finetune` and
`examples/finetune.py` (through `transformers.HfArgumentParser`) all read these fields and their help.

The optimizer recipe (optimizer, learning rate, epochs, weight decay, warm-up, schedule unit) defaults to the trained
method's: a field left at `None` takes the value of the same name in the model's config when it has one (a method's
config may carry `optimizer`, `learning_rate`, ...), else Tip-Adapter-F's (the paper: AdamW, lr 1e-3, eps 1e-4,
weight decay 0.01, 20 epochs, cosine over epochs x iterations, no warm-up). See [`FinetuneConfig.resolve`].
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from typing import Literal

# Tip-Adapter-F's recipe (the paper's reference code), registered as `tip-adapter-f`'s `Method.recipe`; also what a
# `None` recipe field means for a trained method whose recipe does not state it.
TIP_ADAPTER_F_RECIPE = {
    "per_device_train_batch_size": 256,
    "num_train_epochs": 20,
    "learning_rate": 1e-3,
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "warmup_epochs": 0,
    "lr_scheduler_unit": "step",
    "momentum": 0.9,
    "warmup_learning_rate": 1e-5,
}
# CLIP-Adapter's recipe (gaopengcuhk/CLIP-Adapter on CoOp's Dassl trainer, configs/trainers/CoOp/*.yaml): SGD momentum
# 0.9, lr 2e-3, weight decay 5e-4, batch 32, 200 epochs, cosine stepped per epoch after 1 constant warm-up epoch at
# 1e-5; the reference draws fresh augmented views every epoch, here a bank of 10 views (as `hf-tip compare` trains).
CLIP_ADAPTER_RECIPE = {
    "per_device_train_batch_size": 32,
    "num_augmented_views": 10,
    "num_train_epochs": 200,
    "learning_rate": 2e-3,
    "optimizer": "sgd",
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "warmup_epochs": 1,
    "warmup_learning_rate": 1e-5,
    "lr_scheduler_unit": "epoch",
}
# `FinetuneConfig` recipe field -> the names a method's config may state it by (CLIP-Adapter: `batch_size`, ...). A
# value the model's config states wins over its method's registered recipe; a flag wins over both.
RECIPE_FIELDS = {
    "per_device_train_batch_size": ("per_device_train_batch_size", "batch_size"),
    "num_augmented_views": ("num_augmented_views",),
    "num_train_epochs": ("num_train_epochs", "num_epochs"),
    "learning_rate": ("learning_rate",),
    "optimizer": ("optimizer",),
    "weight_decay": ("weight_decay",),
    "momentum": ("momentum",),
    "warmup_epochs": ("warmup_epochs",),
    "warmup_learning_rate": ("warmup_learning_rate", "warmup_lr"),
    "lr_scheduler_unit": ("lr_scheduler_unit",),
}
# What the results JSON of every training run records as the recipe it resolved.
RECORDED_RECIPE = (*RECIPE_FIELDS, "adam_epsilon", "online_augmentation")
DEFAULT_NUM_SHOTS = 16  # a model that states no `num_shots` (CLIP-Adapter) samples this many per class
OPTIMIZERS = ("adamw", "sgd")
SCHEDULER_UNITS = ("step", "epoch")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class FinetuneConfig:
    r"""
    Hyper-parameters and outputs of a fine-tuning run ([`~hf_tip.training.trainer.finetune`]); every field is also a flag of
    `hf-tip finetune` (`--name value`) with the help below.

    Recipe fields left at `None` take the trained method's value ([`resolve`]); for Tip-Adapter-F: AdamW, lr 1e-3,
    eps 1e-4, weight decay 0.01, 20 epochs, cosine over all steps. CLIP-Adapter's reference (CoOp's recipe): SGD
    (momentum 0.9) lr 2e-3, weight decay 5e-4, 200 epochs, cosine stepped per epoch after a 1-epoch warm-up at a
    constant 1e-5.

    Example:

    ```python
    >>> from hf_tip.training.args import FinetuneConfig
    >>> config = FinetuneConfig(num_shots=16, num_train_epochs=100, output_dir="tip-f", checkpointing_steps="epoch")
    >>> config.adam_epsilon, config.per_device_train_batch_size  # None: the method's (Tip-Adapter-F 256)
    (0.0001, None)
    ```
    """

    num_shots: int | None = field(
        default=None, metadata=_help("Examples per class sampled from the train split (default: the model's).")
    )
    num_train_epochs: int | None = field(
        default=None, metadata=_help("Passes over the few-shot set (default: the method's; Tip-Adapter-F 20).")
    )
    learning_rate: float | None = field(
        default=None, metadata=_help("Peak learning rate (default: the method's; Tip-Adapter-F 1e-3).")
    )
    optimizer: Literal["adamw", "sgd"] | None = field(
        default=None, metadata=_help("adamw or sgd (with momentum) (default: the method's; Tip-Adapter-F adamw).")
    )
    adam_epsilon: float = field(default=1e-4, metadata=_help("AdamW's eps (the paper: 1e-4)."))
    weight_decay: float | None = field(
        default=None, metadata=_help("Decoupled (AdamW) or L2 (SGD) weight decay (default: the method's; 0.01).")
    )
    momentum: float | None = field(default=None, metadata=_help("SGD's momentum (default: the method's; 0.9)."))
    warmup_epochs: int | None = field(
        default=None, metadata=_help("Epochs at the constant `warmup_learning_rate` before the cosine (default 0).")
    )
    warmup_learning_rate: float | None = field(
        default=None, metadata=_help("The learning rate of the warm-up epochs (default: the method's; 1e-5).")
    )
    lr_scheduler_unit: Literal["step", "epoch"] | None = field(
        default=None,
        metadata=_help("Cosine over all steps (step: Tip-Adapter-F) or stepped once per epoch (epoch: CoOp's)."),
    )
    per_device_train_batch_size: int | None = field(
        default=None,
        metadata=_help(
            "Examples per process and step; the global batch is this x processes (default: the method's; "
            "Tip-Adapter-F 256, CLIP-Adapter 32)."
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=_help(
            "Seeds the few-shot sample, the views and each epoch's order (default: the cache's seed, else 1)."
        ),
    )
    alpha: float | None = field(default=None, metadata=_help("alpha > 0 of the training loss (default: the model's)."))
    beta: float | None = field(default=None, metadata=_help("beta >= 0 of the training loss (default: the model's)."))
    online_augmentation: bool = field(
        default=False, metadata=_help("Re-encode fresh views at every step (the paper's loop), not a feature bank.")
    )
    num_augmented_views: int | None = field(
        default=None,
        metadata=_help(
            "Views per image in the feature bank (default: the method's; CLIP-Adapter 10, Tip-Adapter-F the model's "
            "augment_epochs)."
        ),
    )
    augment_epochs: int | None = field(
        default=None, metadata=_help("Views averaged into each key when the model's cache is built first.")
    )
    encode_batch_size: int = field(default=64, metadata=_help("Images per forward of the backbone when encoding."))
    image_column: str = field(default="image", metadata=_help("The dataset's image column."))
    label_column: str = field(default="label", metadata=_help("The dataset's label column (a ClassLabel)."))
    allow_fewer_shots: bool = field(default=False, metadata=_help("Take all examples of classes with fewer."))
    class_names: list[str] | None = field(
        default=None,
        metadata=_help("The model's name of each dataset label, in label order, when they differ from the dataset's."),
    )
    output_dir: str | None = field(
        default=None, metadata=_help("Where to save the model, all_results.json and the checkpoints.")
    )
    overwrite_output_dir: bool = field(default=False, metadata=_help("Replace what output_dir already holds."))
    checkpointing_steps: str | None = field(
        default=None, metadata=_help('Save a checkpoint every N steps, or "epoch" (safetensors + JSON, no pickle).')
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata=_help('A checkpoint folder, or "latest" (the newest in output_dir/checkpoints).')
    )
    feature_cache_dir: str | None = field(
        default=None, metadata=_help("A safetensors cache of the validation/test features.")
    )
    dataset_name: str | None = field(default=None, metadata=_help("A dataset on the Hub (or a local dataset folder)."))
    # recorded in the model card; set by the command (redacted), never a flag a user needs
    command: str | None = field(default=None, metadata=_help(argparse.SUPPRESS))

    def __post_init__(self):
        _check_positive_int("encode_batch_size", self.encode_batch_size)
        for name in (
            "per_device_train_batch_size",
            "num_train_epochs",
            "num_shots",
            "num_augmented_views",
            "augment_epochs",
        ):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if self.warmup_epochs is not None and (not _is_int(self.warmup_epochs) or self.warmup_epochs < 0):
            raise ValueError(f"`warmup_epochs` must be an integer >= 0, got {self.warmup_epochs!r}.")
        for name in ("learning_rate", "adam_epsilon", "warmup_learning_rate"):
            _check_number(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "beta", "momentum"):
            _check_number(name, getattr(self, name), positive=False)
        if self.alpha is not None and (not _is_number(self.alpha) or not 0 < self.alpha < math.inf):
            raise ValueError(
                f"`alpha` must be a finite number > 0, got {self.alpha!r} (at 0 the keys get no gradient)."
            )
        for name, allowed in (("optimizer", OPTIMIZERS), ("lr_scheduler_unit", SCHEDULER_UNITS)):
            if getattr(self, name) is not None and getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {list(allowed)}, got {getattr(self, name)!r}.")
        steps = self.checkpointing_steps
        if isinstance(steps, str) and steps.isdigit():
            self.checkpointing_steps = steps = int(steps)
        if steps is not None and steps != "epoch":
            _check_positive_int("checkpointing_steps", steps, hint=' or "epoch"')
        if (self.checkpointing_steps is not None or self.resume_from_checkpoint is not None) and not self.output_dir:
            raise ValueError("`checkpointing_steps` and `resume_from_checkpoint` need an `output_dir`.")

    def resolve(self, model=None) -> FinetuneConfig:
        """A copy whose recipe fields left at `None` hold the trained method's values: the model config's field of
        the same name (or its alias, [`RECIPE_FIELDS`]) when it states one, else the method's registered
        `Method.recipe` ([`trained_method`]), else Tip-Adapter-F's ([`TIP_ADAPTER_F_RECIPE`]); `num_shots` left at
        `None` takes the model's (else 16)."""
        model_config = getattr(model, "config", None)
        method = trained_method(model) if model is not None else None
        recipe = {**TIP_ADAPTER_F_RECIPE, **(method.recipe if method is not None else {})}
        values = {}
        for name, aliases in RECIPE_FIELDS.items():
            if getattr(self, name) is not None:
                continue
            stated = [getattr(model_config, a) for a in aliases if getattr(model_config, a, None) is not None]
            if stated:
                values[name] = stated[0]
            elif recipe.get(name) is not None:
                values[name] = recipe[name]
        if self.num_shots is None:
            values["num_shots"] = getattr(model_config, "num_shots", None) or DEFAULT_NUM_SHOTS
        return replace(self, **values)

    def recipe(self) -> dict:
        """The recipe this (resolved) run trains with, as every results JSON records it: batch size per process,
        views, learning rate, epochs, optimizer, schedule ([`RECORDED_RECIPE`])."""
        return {name: getattr(self, name) for name in RECORDED_RECIPE}


def trained_method(model):
    """The registered method that trains `model` (`tip-adapter-f` for a Tip-Adapter, `clip-adapter`, a plugin's):
    the first method with `trains=True` for its `model_type`; `None` for a model no registered method trains (its
    recipe is then the model config's fields and Tip-Adapter-F's defaults)."""
    from ..methods import methods_for_model_type

    model_type = getattr(getattr(model, "config", None), "model_type", None) or ""
    trained = [m for m in methods_for_model_type(model_type) if m.trains]
    return trained[0] if trained else None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_int(name: str, value, hint: str = "") -> None:
    """Raise a `ValueError` naming `name` unless `value` is an integer >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1{hint}, got {value!r}.")


def _check_number(name: str, value, positive: bool) -> None:
    """Raise a `ValueError` naming `name` unless `value` (if set) is finite and > 0 (`positive`) or >= 0."""
    if value is None:
        return
    if not _is_number(value) or math.isnan(value) or math.isinf(value) or (value <= 0 if positive else value < 0):
        raise ValueError(f"`{name}` must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}.")


__all__ = [
    "CLIP_ADAPTER_RECIPE",
    "OPTIMIZERS",
    "RECIPE_FIELDS",
    "RECORDED_RECIPE",
    "SCHEDULER_UNITS",
    "TIP_ADAPTER_F_RECIPE",
    "FinetuneConfig",
    "trained_method",
]
