"""Checks a fine-tuning run makes before it reads or writes anything: the dataset's splits, columns and classes
against the model's, and the output folder (nothing the user had is replaced without `overwrite_output_dir`)."""

from __future__ import annotations

import os

from ..cli.output_dir import check_writable
from ..data import datasets as data
from ..models.names import clean_class_name
from .args import FinetuneConfig
from .checkpoints import CHECKPOINTS_DIR

# Entries of an output folder that belong to a run in progress (its checkpoints and its trackers' logs).
RUN_IN_PROGRESS = {CHECKPOINTS_DIR, "logs"}


def _model_class_names(model) -> list[str]:
    return [model.config.id2label[i] for i in range(len(model.config.id2label))]


def check_dataset(model, dataset, config: FinetuneConfig) -> list[int] | None:
    """[`data.check_dataset`] for fine-tuning: `train` and `validation` splits, the columns, the same classes in every
    split, matched to the model's by name or by `config.class_names` (the model's name of each dataset label, in
    label order). Returns the label map (dataset label -> model class; `None` when they agree)."""
    model_names = _model_class_names(model)
    if config.class_names is not None:
        unknown = {clean_class_name(n) for n in config.class_names} - {clean_class_name(n) for n in model_names}
        if unknown:
            raise ValueError(f"`class_names` {list(config.class_names)} are not the model's classes {model_names}.")
    return data.check_dataset(
        dataset,
        model_names,
        image_column=config.image_column,
        label_column=config.label_column,
        class_mapping=config.class_names,
        required_splits=("train", "validation"),
        mapping_argument="`class_names` (`--class_names`)",
    )


def config_label_map(model, config: FinetuneConfig) -> list[int] | None:
    """The model's class of each dataset label under `config.class_names` (`None`: the same indices)."""
    if config.class_names is None:
        return None
    names = [str(n) for n in config.class_names]
    return data.align_labels(names, _model_class_names(model), names, mapping_argument="`class_names`")


def check_output_dir(config: FinetuneConfig) -> None:
    """Raise a `ValueError` when `output_dir` holds anything but a run in progress (its `checkpoints/` and `logs/`),
    unless `overwrite_output_dir`: a saved model is never replaced silently, also when resuming."""
    if config.output_dir is None:
        return
    path = check_writable(config.output_dir, "`output_dir` (`--output_dir`)")
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


__all__ = ["RUN_IN_PROGRESS", "check_dataset", "check_output_dir"]
