"""Loading image-classification datasets from the Hub or from local folders (`imagefolder`)."""

from __future__ import annotations

import os

from datasets import DatasetDict, load_dataset

from .data import check_columns

SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | os.PathLike | None = None,
    validation_dir: str | os.PathLike | None = None,
    test_dir: str | os.PathLike | None = None,
    image_column: str = "image",
    label_column: str = "label",
    cache_dir: str | None = None,
) -> DatasetDict:
    """A `DatasetDict` with canonical split names (`train`, `validation`, `test`) from a Hub dataset id / local
    dataset script folder, or from `imagefolder` directories (one sub-folder per class).

    Split aliases (`valid`, `val`, `dev`) are renamed to `validation`. Raises a `ValueError` naming the missing
    column and listing the columns when `image_column` / `label_column` are absent.
    """
    if (dataset_name is None) == (train_dir is None and validation_dir is None and test_dir is None):
        raise ValueError(
            "Pass either `dataset_name` (`--dataset_name`) or image folders (`--train_dir`, ...), not both."
        )
    if dataset_name is not None:
        raw = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    else:
        data_files = {}
        for split, folder in (("train", train_dir), ("validation", validation_dir), ("test", test_dir)):
            if folder is not None:
                if not os.path.isdir(folder):
                    raise ValueError(f"`{split}_dir` {str(folder)!r} is not a directory.")
                data_files[split] = os.path.join(str(folder), "**")
        raw = load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)
    splits = {}
    for canonical, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in raw:
                splits[canonical] = raw[alias]
                break
    for split in raw:
        if split not in {a for aliases in SPLIT_ALIASES.values() for a in aliases}:
            splits[split] = raw[split]
    dataset = DatasetDict(splits)
    for split in dataset.values():
        check_columns(split, image_column, label_column)
    return dataset


def require_split(dataset: DatasetDict, split: str, flag: str) -> None:
    """Raise a `ValueError` naming the missing split, the splits present and the flag that supplies it."""
    if split not in dataset:
        raise ValueError(
            f"The dataset has no `{split}` split (it has {sorted(dataset)}); pass `{flag}` or a dataset with one."
        )
