"""Setting up a fine-tuning run: resolve its configuration, run the checks every process makes identically (before
any collective), find and load the checkpoint to resume from, enable the trained parameters, and the signature a
resumed run must share."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from pathlib import Path

from .args import FinetuneConfig
from .checkpoints import CHECKPOINTS_DIR, find_checkpoint, load_checkpoint, trained_named_parameters
from .checks import check_dataset, check_output_dir


def prepare(
    model, dataset, config: FinetuneConfig | None, accelerator
) -> tuple[FinetuneConfig, Path | None, tuple | None]:
    """Resolve the seed and the recipe, run every check that needs no collective (identically on every process),
    find the checkpoint to resume from; then clear a replaced run's checkpoints."""
    config = (config if config is not None else FinetuneConfig()).resolve(model)
    built_from = (
        model.config.few_shot_seed
        if getattr(model, "cache_keys", None) is not None and len(model.cache_keys)
        else None
    )
    if config.seed is None:  # train on the images the cache was built from
        config = replace(config, seed=built_from if built_from is not None else 1)
    elif built_from is not None and built_from != config.seed:
        warnings.warn(
            f"The cache was built from the few-shot sample of seed {built_from}, but fine-tuning samples seed "
            f"{config.seed}: its keys will be trained on other images. Leave the seed unset to use the cache's.",
            UserWarning,
            stacklevel=3,
        )
    label_map = check_dataset(model, dataset, config)
    if label_map is not None:  # the dataset's classes by the model's names: every later read maps labels alike
        config = replace(config, class_names=[model.config.id2label[i] for i in label_map])
    check_output_dir(config)
    if hasattr(model, "cache_keys"):
        alpha = config.alpha if config.alpha is not None else model.config.alpha
        beta = config.beta if config.beta is not None else model.config.beta
        if not alpha > 0:
            raise ValueError(
                f"The training alpha is {alpha!r} (`FinetuneConfig.alpha` unset: the model's `config.alpha`): at 0 "
                "the cache term vanishes and the keys get no gradient. Pass `FinetuneConfig(alpha=...)` > 0 (`--alpha`)."
            )
        config = replace(config, alpha=alpha, beta=beta)
    resume = (
        find_checkpoint(config.output_dir, config.resume_from_checkpoint) if config.resume_from_checkpoint else None
    )
    checkpoint = load_checkpoint(resume) if resume is not None else None  # a broken one fails here, on every process
    accelerator.wait_for_everyone()  # every process has checked the output folder before anything is written to it
    if accelerator.is_main_process and config.output_dir and resume is None:
        shutil.rmtree(Path(config.output_dir) / CHECKPOINTS_DIR, ignore_errors=True)  # a replaced run's checkpoints
    return config, resume, checkpoint


def enable_training(model, config: FinetuneConfig) -> None:
    """Make the trained parameters trainable (the model decides which), at the training α/β for Tip-Adapter."""
    if hasattr(model, "enable_key_finetuning"):
        model.enable_key_finetuning()
        model.config.alpha, model.config.beta = config.alpha, config.beta
    else:
        model.enable_training()


def signature(config: FinetuneConfig, model, num_examples: int, train_batch_size: int, first_view: int, views) -> dict:
    """The settings a resumed run must share with the checkpoint's."""
    return {
        "num_examples": num_examples, "train_batch_size": train_batch_size,
        "num_train_epochs": config.num_train_epochs, "seed": config.seed, "learning_rate": config.learning_rate,
        "alpha": config.alpha, "beta": config.beta,
        "augmentation": "online" if config.online_augmentation else f"bank of {views} views",
        "first_training_view": first_view, "optimizer": config.optimizer, "weight_decay": config.weight_decay,
        "adam_epsilon": config.adam_epsilon, "momentum": config.momentum, "warmup_epochs": config.warmup_epochs,
        "warmup_learning_rate": config.warmup_learning_rate, "lr_scheduler_unit": config.lr_scheduler_unit,
        "trained": sorted(trained_named_parameters(model)),
    }  # fmt: skip


__all__ = ["enable_training", "prepare", "signature"]
