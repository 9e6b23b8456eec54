"""Command-line arguments, declared once as dataclasses: `transformers.HfArgumentParser` turns their fields into the
flags of every `hf-tip` command (help in `field(metadata={"help": ...})`), and the same fields load from a `.json` /
`.yaml` file. Each class checks its own values in `__post_init__`, so a bad flag fails before any work.

Shared groups: [`DataArguments`] (and [`TrainDataArguments`] for commands that carve a validation split),
[`AdapterArguments`], [`ComputeArguments`] and [`OutputArguments`].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..models.names import check_class_names
from ..models.search import check_search_grid

DEFAULT_BACKBONE = "openai/clip-vit-base-patch16"


def _positive(value, flag: str, low: int = 1) -> None:
    """A `ValueError` naming `flag` unless `value` is None or an integer >= `low`."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ValueError(f"{flag} must be an integer >= {low}, got {value!r}.")


@dataclass
class DataArguments:
    """Where the images come from: a Hub dataset or image folders, and their columns."""

    _argument_group_name: ClassVar[str] = "data"

    dataset_name: str | None = field(
        default=None, metadata={"help": "A dataset on the Hub (or a local dataset folder), e.g. timm/eurosat-rgb."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The dataset's configuration name, if it has several."}
    )
    train_dir: str | None = field(
        default=None, metadata={"help": "An imagefolder directory (one sub-folder per class) for the train split."}
    )
    validation_dir: str | None = field(
        default=None, metadata={"help": "An imagefolder directory for the validation split."}
    )
    test_dir: str | None = field(default=None, metadata={"help": "An imagefolder directory for the test split."})
    image_column: str = field(default="image", metadata={"help": "The column holding the images."})
    label_column: str = field(default="label", metadata={"help": "The column holding the labels."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where `datasets` stores downloaded and prepared data."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Score on at most this many (seeded) validation and test images each."}
    )

    def __post_init__(self):
        _positive(self.max_eval_samples, "--max_eval_samples")


@dataclass
class TrainDataArguments(DataArguments):
    """[`DataArguments`] plus `--train_val_split`, for commands that need a validation split."""

    train_val_split: float | None = field(
        default=None,
        metadata={
            "help": "Without a validation split, carve this fraction of each class of the train split into one "
            "(stratified and seeded: the same split for every --seed), e.g. 0.2.",
            "metavar": "FRACTION",
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.train_val_split is not None:
            check_fraction(self.train_val_split, "--train_val_split")


@dataclass
class AdapterArguments:
    """The few-shot cache, its prompts and the hyper-parameter search."""

    _argument_group_name: ClassVar[str] = "adapter"

    class_names: list[str] | None = field(
        default=None, metadata={"help": "Class names in label order, overriding the dataset's."}
    )
    templates: list[str] | None = field(
        default=None, metadata={"help": 'Prompt templates, each with one {}, e.g. "a photo of a {}.".'}
    )
    num_shots: int = field(default=16, metadata={"help": "Images per class in the cache."})
    augment_epochs: int | None = field(
        default=None,
        metadata={"help": "Augmented views averaged into each cache key (unset: the template set's, else 10)."},
    )
    seed: int = field(default=1, metadata={"help": "Seeds the few-shot sampling and the augmentation."})
    search_scale: list[float] | None = field(
        default=None, metadata={"help": "Upper ends of the alpha/beta grid: two numbers, BETA_MAX ALPHA_MAX."}
    )
    search_step: list[int] | None = field(
        default=None, metadata={"help": "Sizes of the grid: two integers, N_BETA N_ALPHA (product <= 1e6)."}
    )
    allow_fewer_shots: bool = field(
        default=False, metadata={"help": "Take all images of classes with fewer than --num_shots."}
    )
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Store validation/test features here and reuse them on reruns."}
    )

    def __post_init__(self):
        if self.class_names is not None:
            check_class_names(self.class_names, "--class_names")
        _positive(self.num_shots, "--num_shots")
        _positive(self.augment_epochs, "--augment_epochs")
        if self.search_scale is not None or self.search_step is not None:
            try:
                check_search_grid(self.search_scale or (7.0, 3.0), self.search_step or (200, 20))
            except ValueError as error:
                raise ValueError(str(error).replace("`search_", "`--search_")) from None


@dataclass
class ComputeArguments:
    """Where and how fast the backbone runs."""

    _argument_group_name: ClassVar[str] = "compute"

    batch_size: int = field(default=64, metadata={"help": "Images per forward pass."})
    device: str | None = field(
        default=None, metadata={"help": "Where CLIP runs, e.g. cuda, cuda:1, mps, cpu (unset: cuda if available)."}
    )
    disable_tqdm: bool = field(default=False, metadata={"help": "No progress bars."})

    def __post_init__(self):
        _positive(self.batch_size, "--batch_size")


@dataclass
class OutputArguments:
    """Where the model goes: a folder, and optionally the Hub."""

    _argument_group_name: ClassVar[str] = "output"

    output_dir: str = field(metadata={"help": "Folder for the saved model and results.json."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Write into an --output_dir that is not empty (it may hold a model)."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push the saved model to the Hugging Face Hub."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "The Hub repo to push to (unset: the output folder's name)."}
    )
    hub_token: str | None = field(
        default=None,
        metadata={"help": "A Hub token for --push_to_hub (unset: the stored login or HF_TOKEN); never recorded."},
    )


def load_dataset_from_args(data: DataArguments):
    """The `DatasetDict` that the data flags name (see [`~loading.load_image_dataset`]); with `--train_val_split`, a
    stratified, seeded validation split carved from train by `load_image_dataset(..., train_val_split=...)`."""
    from ..data.loading import load_image_dataset

    fraction = getattr(data, "train_val_split", None)
    return load_image_dataset(
        data.dataset_name,
        data.dataset_config_name,
        data.train_dir,
        data.validation_dir,
        data.test_dir,
        image_column=data.image_column,
        label_column=data.label_column,
        cache_dir=data.cache_dir,
        train_val_split=fraction,
    )


def check_fraction(value: float, flag: str) -> None:
    """A `ValueError` naming `flag` unless `value` is a finite fraction in (0, 1)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{flag} must be a fraction in (0, 1), got {value!r}.")


__all__ = [
    "DEFAULT_BACKBONE",
    "load_dataset_from_args",
    "AdapterArguments",
    "ComputeArguments",
    "DataArguments",
    "OutputArguments",
    "TrainDataArguments",
]
