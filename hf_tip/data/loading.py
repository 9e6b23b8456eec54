"""Loading image-classification datasets from the Hub or from local folders (`imagefolder`)."""

from __future__ import annotations

import os

from datasets import DatasetDict, load_dataset

from .datasets import SPLIT_FLAGS, check_columns, dataset_class_names, stratified_split
from .datasets import require_split as _require_split

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
    train_val_split: float | None = None,
    split_seed: int = 0,
) -> DatasetDict:
    """A `DatasetDict` with canonical split names (`train`, `validation`, `test`) from a Hub dataset id / local
    dataset script folder, or from `imagefolder` directories (one sub-folder per class).

    Split aliases (`valid`, `val`, `dev`) are renamed to `validation`. With `train_val_split` (`--train_val_split`)
    and no validation split, a stratified, seeded validation split is carved from train (see [`carve_validation`]).
    Raises a `ValueError` naming the missing column and listing the columns when `image_column` / `label_column`
    are absent, and naming the folder for an image folder without images or missing a class sub-folder.
    """
    if (dataset_name is None) == (train_dir is None and validation_dir is None and test_dir is None):
        raise ValueError(
            "Pass either `dataset_name` (`--dataset_name`) or image folders (`--train_dir`, ...), not both."
        )
    if dataset_name is not None:
        raw = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    else:
        folders = {"train": train_dir, "validation": validation_dir, "test": test_dir}
        folders = {split: folder for split, folder in folders.items() if folder is not None}
        check_image_folders(folders)
        data_files = {split: os.path.join(str(folder), "**") for split, folder in folders.items()}
        # labels from the class sub-folders even when there is one (as `hf-tip update` adding one class gives)
        raw = load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir, drop_labels=False)
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
    if train_val_split is not None:
        if "validation" in dataset:
            raise ValueError(
                f"`--train_val_split {train_val_split}` carves a validation split from train, but the dataset already "
                "has one (`--validation_dir` or the dataset's own); drop one of them."
            )
        _require_split(dataset, "train", SPLIT_FLAGS["train"])
        train, validation = carve_validation(dataset["train"], train_val_split, split_seed, label_column)
        dataset = DatasetDict(
            {"train": train, "validation": validation, **{k: v for k, v in dataset.items() if k != "train"}}
        )
    return dataset


IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def _class_folders(folder: str | os.PathLike, flag: str) -> dict[str, int]:
    """Each class sub-folder of an image folder and its number of image files; raises naming the folder when it
    holds no image files at all."""
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {str(folder)!r} is not a directory.")
    counts: dict[str, int] = {}
    for root, _, files in os.walk(folder):
        images = sum(name.lower().endswith(IMAGE_EXTENSIONS) for name in files)
        relative = os.path.relpath(root, folder)
        if images and relative != ".":
            top = relative.split(os.sep)[0]
            counts[top] = counts.get(top, 0) + images
        elif images:
            raise ValueError(
                f"{flag} {str(folder)!r} holds {images} image file(s) directly in it, outside any class sub-folder; "
                "it should hold one sub-folder of images per class (its name is the class)."
            )
    if not counts:
        raise ValueError(
            f"{flag} {str(folder)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); it should hold one "
            "sub-folder of images per class."
        )
    return counts


def check_image_folders(folders: dict[str, str | os.PathLike]) -> None:
    """Check `imagefolder` directories before loading: each holds images, and every split has the train folder's
    class sub-folders (a missing one is named, with its split and flag)."""
    classes = {split: _class_folders(folder, f"`{split}_dir` (`--{split}_dir`)") for split, folder in folders.items()}
    if "train" not in classes:
        return
    for split, found in classes.items():
        missing = sorted(set(classes["train"]) - set(found))
        extra = sorted(set(found) - set(classes["train"]))
        if split != "train" and (missing or extra):
            raise ValueError(
                f"`--{split}_dir` {str(folders[split])!r} does not have the class sub-folders of `--train_dir` "
                f"{str(folders['train'])!r}: missing in the {split} split: {missing}; only in the {split} split: "
                f"{extra}. Every split needs one sub-folder per class, with the same names."
            )


def carve_validation(train, fraction: float, seed: int = 0, label_column: str = "label"):
    r"""
    Carve a stratified, seeded validation split from a train split, as `--train_val_split 0.2` does.

    Each class gives `max(1, round(fraction * n))` of its `n` examples to validation, chosen by hf-tip's one seeding
    scheme (`data.stratified_split`, stream `"split"`), and keeps at least one in train; a class too small for that
    raises a `ValueError` naming it. The same data, fraction and seed always give the same split.

    Args:
        train (`datasets.Dataset`): the split to carve.
        fraction (`float`): the fraction of each class for validation, in (0, 1).
        seed (`int`, *optional*, defaults to 0): the split's seed (kept apart from the few-shot seed, so runs with
            different `--seed` share one validation split).
        label_column (`str`, *optional*, defaults to `"label"`): the class column.

    Returns:
        `(train, validation)`: two `datasets.Dataset`s, rows in their original order.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"`--train_val_split` must be a fraction in (0, 1), e.g. 0.2; got {fraction!r}.")
    check_columns(train, label_column)
    parts = stratified_split(
        list(train[label_column]), {"validation": fraction}, seed, dataset_class_names(train, label_column)
    )
    return train.select(parts["train"]), train.select(parts["validation"])


def require_split(dataset: DatasetDict, split: str, flag: str | None = None) -> None:
    """Raise a `ValueError` naming the missing split, the splits present and the flag that supplies it (for
    `validation`, also `--train_val_split`)."""
    _require_split(dataset, split, flag)
