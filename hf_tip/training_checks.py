"""Checks a fine-tuning run makes before it reads or writes anything: the dataset's splits, columns and classes
against the model's, and the output folder (nothing the user had is replaced without `overwrite_output_dir`)."""

from __future__ import annotations

import os
from pathlib import Path

from .data import check_columns, dataset_class_names
from .loading import require_split
from .training_args import FinetuneConfig
from .training_checkpoints import CHECKPOINTS_DIR

# Entries of an output folder that belong to a run in progress (its checkpoints and its trackers' logs).
RUN_IN_PROGRESS = {CHECKPOINTS_DIR, "logs"}


def _model_class_names(model) -> list[str]:
    return [model.config.id2label[i] for i in range(len(model.config.id2label))]


def check_dataset(model, dataset, config: FinetuneConfig) -> None:
    """Raise a `ValueError` for a missing train/validation split, a missing column, splits with different classes,
    or classes that differ from the model's (naming them)."""
    require_split(dataset, "train", "--train_dir")
    require_split(dataset, "validation", "--validation_dir")
    model_names = _model_class_names(model)
    renamed = config.class_names is not None
    if renamed and list(config.class_names) != model_names:
        raise ValueError(f"`class_names` {list(config.class_names)} are not the model's classes {model_names}.")
    reference = dataset_class_names(dataset["train"], config.label_column)
    for split_name, split in dataset.items():
        check_columns(split, config.image_column, config.label_column)
        names = dataset_class_names(split, config.label_column)
        if names is None or names == model_names:
            continue
        if names != reference:
            raise ValueError(f"The `{split_name}` split's classes {names} are not the `train` split's {reference}.")
        if len(names) != len(model_names):
            raise ValueError(
                f"The `{split_name}` split has {len(names)} classes {names}, the model {len(model_names)} "
                f"{model_names}. Fine-tune a model built for this dataset's classes."
            )
        if not renamed:  # declared renames: label i of the dataset is the model's class i
            _check_same_names(split_name, names, model_names)


def _check_same_names(split_name: str, names: list[str], model_names: list[str]) -> None:
    only_data = [n for n in names if n not in model_names]
    only_model = [n for n in model_names if n not in names]
    if not only_data:
        raise ValueError(
            f"The `{split_name}` split lists the model's classes in another order: {names} (the model: "
            f"{model_names}); its label indices would point at the wrong classes."
        )
    raise ValueError(
        f"The `{split_name}` split's classes differ from the model's: only in the dataset: {only_data}; only in "
        f"the model: {only_model}. If the model renamed this dataset's classes (label i is the model's class i), "
        "pass the model's names as `class_names` (`--class_names`)."
    )


def check_output_dir(config: FinetuneConfig) -> None:
    """Raise a `ValueError` when `output_dir` holds anything but a run in progress (its `checkpoints/` and `logs/`),
    unless `overwrite_output_dir`: a saved model is never replaced silently, also when resuming."""
    if config.output_dir is None:
        return
    path = Path(config.output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`output_dir` {str(path)!r} exists and is not a directory.")
    entries = sorted(set(os.listdir(path)) - RUN_IN_PROGRESS) if path.is_dir() else []
    if config.resume_from_checkpoint is None and (path / CHECKPOINTS_DIR).is_dir():
        entries = sorted({*entries, CHECKPOINTS_DIR})  # another run's checkpoints: replaced only on request
    if entries and not config.overwrite_output_dir:
        shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
        hint = "" if config.resume_from_checkpoint else ", `--resume_from_checkpoint latest` to continue it"
        raise ValueError(
            f"`output_dir` {str(path)!r} already holds another run ({shown}). Pass `--overwrite_output_dir` to "
            f"replace it{hint}, or choose another `--output_dir`."
        )
    _check_writable(path)


def _check_writable(path: Path) -> None:
    """Raise a `ValueError` now, not after the training, when `path` (or its nearest existing parent) is read-only."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"`output_dir` {str(path)!r} is not writable ({str(existing)!r} is read-only).")


__all__ = ["RUN_IN_PROGRESS", "check_dataset", "check_output_dir"]
