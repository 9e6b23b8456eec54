"""Checks and index arithmetic behind the live updates of a Tip-Adapter (`add_examples`, `add_classes`,
`remove_classes`): every input is validated here, before the model changes.

Nothing here imports `datasets`: it ships with the model's remote code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from PIL import Image, UnidentifiedImageError

from .names import clean_class_name


def as_images(images, what: str = "images") -> list[Image.Image]:
    """The items of `images` as loaded RGB PIL images; a path (`str` / `os.PathLike`) is opened. Raises a
    `ValueError` naming the first item that is not an image (`images[3]`, or its path)."""
    if isinstance(images, (Image.Image, str, os.PathLike)):
        raise ValueError(
            f"`{what}` must be a list of images, got a single {type(images).__name__}; wrap it in a list."
        )
    if not isinstance(images, (Sequence, torch.Tensor)) and not hasattr(images, "__iter__"):
        raise ValueError(f"`{what}` must be a list of images, got {type(images).__name__}.")
    out = []
    for i, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            try:
                with Image.open(item) as opened:
                    item = opened.convert("RGB")
            except (OSError, UnidentifiedImageError) as error:
                raise ValueError(f"`{what}[{i}]` ({str(item)!r}) is not a readable image: {error}") from None
        if not isinstance(item, Image.Image):
            raise ValueError(f"`{what}[{i}]` is a {type(item).__name__}, not an image (a PIL image or a file path).")
        if item.width < 1 or item.height < 1:
            raise ValueError(f"`{what}[{i}]` is an empty image ({item.width}x{item.height}).")
        out.append(item)
    return out


def check_new_class_names(names: Sequence[str], existing: Sequence[str]) -> list[str]:
    """`names` as a list of new, unique, non-empty class names; raises a `ValueError` naming the offender."""
    if isinstance(names, str):
        raise ValueError(f"`names` must be a list of class names, got the single string {names!r}; wrap it in a list.")
    names = list(names)
    if not names:
        raise ValueError("`names` must name at least one class.")
    existing_clean = {clean_class_name(name): name for name in existing}
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(f"Class name `names[{i}]` must be a string, got {type(name).__name__} {name!r}.")
        if not name.strip():
            raise ValueError(f"Class name `names[{i}]` is empty ({name!r}); give every class a name.")
        key = clean_class_name(name)  # as the prompts read it: "Dog" and "dog", "red_square" and "red square" clash
        if key in existing_clean:
            raise ValueError(
                f"{name!r} is already a class of this model (as {existing_clean[key]!r}; its classes: {list(existing)})."
            )
        if key in seen:
            raise ValueError(
                f"Class {name!r} appears twice in `names` {names} (as {seen[key]!r}: names compare as the prompts read "
                "them, `_` as a space, any case); each new class needs a distinct name."
            )
        seen[key] = name
    return names


def resolve_labels(labels, label2id: Mapping[str, int], num_classes: int, count: int) -> torch.Tensor:
    """`labels` (class indices in `[0, num_classes)` or class names of `label2id`, one per image) as a LongTensor
    `[count]`; raises a `ValueError` naming the unknown class or the label out of range."""
    if isinstance(labels, str) or (isinstance(labels, (int, torch.Tensor)) and torch.as_tensor(labels).ndim == 0):
        raise ValueError(f"`labels` must hold one label per image, got the single label {labels!r}.")
    labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if len(labels) != count:
        raise ValueError(f"Pass one label per image: got {count} images and {len(labels)} labels.")
    out = []
    for i, label in enumerate(labels):
        if isinstance(label, str):
            if label not in label2id:
                raise ValueError(
                    f"Unknown class {label!r} in `labels[{i}]`; the model's classes are {list(label2id)}."
                )
            out.append(int(label2id[label]))
        elif isinstance(label, int) and not isinstance(label, bool):
            if not 0 <= label < num_classes:
                raise ValueError(
                    f"`labels[{i}]` = {label} lies outside [0, {num_classes}) for the model's {num_classes} classes."
                )
            out.append(label)
        else:
            raise ValueError(
                f"`labels[{i}]` must be a class index or a class name, got {type(label).__name__} {label!r}."
            )
    return torch.tensor(out, dtype=torch.long)


def classes_to_remove(names: Sequence[str], label2id: Mapping[str, int]) -> list[int]:
    """The sorted class indices of `names` (known, distinct, leaving at least one class); raises a `ValueError`."""
    if isinstance(names, str):
        raise ValueError(f"`names` must be a list of class names, got the single string {names!r}; wrap it in a list.")
    names = list(names)
    if not names:
        raise ValueError("`names` must name at least one class to remove.")
    for name in names:
        if name not in label2id:
            raise ValueError(f"Unknown class {name!r}; the model's classes are {list(label2id)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`names` {names} names a class twice.")
    if len(names) >= len(label2id):
        raise ValueError(f"Removing {names} would leave no class; a model needs at least one.")
    return sorted(int(label2id[name]) for name in names)


def reindex(cache_labels: torch.Tensor, removed: Sequence[int], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """After removing the classes `removed`: the mask of cache entries kept `[NK]` and their new labels `[NK_kept]`
    (each old label minus the number of removed classes below it)."""
    gone = torch.zeros(num_classes, dtype=torch.bool)
    gone[list(removed)] = True
    shift = torch.cumsum(gone.long(), 0)  # removed classes at or below each label
    cpu_labels = cache_labels.cpu()
    keep = ~gone[cpu_labels]
    return keep, (cpu_labels - shift[cpu_labels])[keep]
