"""Where datasets enter: column, split and class checks (matched by name), few-shot sampling, a dataset's images.

Nothing here imports `datasets`: a `datasets.Dataset` is used through its public attributes (`column_names`,
`features`, `select`, indexing).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ..models.names import clean_class_name
from ..models.seeding import shuffle_keys

SPLIT_FLAGS = {
    "train": "`--train_dir`",
    "validation": "`--validation_dir`, or `--train_val_split 0.2` to carve a stratified validation split from train",
    "test": "`--test_dir`",
}


def check_columns(dataset, *columns: str) -> None:
    """Raise a `ValueError` naming each missing column and listing the dataset's columns."""
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Column(s) {missing} not found in the dataset; its columns are {dataset.column_names}. "
            "Pass `image_column=` / `label_column=` (`--image_column` / `--label_column`) to choose others."
        )


def require_split(dataset, split: str, flag: str | None = None) -> None:
    """Raise a `ValueError` naming the missing split, the splits present and the flag that supplies it."""
    if split not in dataset:
        hint = flag or SPLIT_FLAGS.get(split, f"`--{split}_dir`")
        if split == "validation" and "train_val_split" not in hint:
            hint += ", or `--train_val_split 0.2` to carve a stratified validation split from train"
        raise ValueError(f"The dataset has no `{split}` split (it has {sorted(dataset)}); pass {hint}.")


def dataset_class_names(dataset, label_column: str = "label") -> list[str] | None:
    """The `ClassLabel` names of a dataset's label column, or `None` when it has none."""
    feature = getattr(dataset, "features", {}).get(label_column) if hasattr(dataset, "features") else None
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _mapping_targets(dataset_names: list[str], class_mapping, mapping_argument: str) -> list:
    """The model class (name or index) each dataset class maps to, under `class_mapping`."""
    if class_mapping is None:
        return list(dataset_names)
    if isinstance(class_mapping, Mapping):
        cleaned = {clean_class_name(k): v for k, v in class_mapping.items()}
        unknown = [k for k in class_mapping if clean_class_name(k) not in map(clean_class_name, dataset_names)]
        if unknown:
            raise ValueError(
                f"{mapping_argument} maps {unknown}, which are not dataset classes; the dataset's are {dataset_names}."
            )
        return [cleaned.get(clean_class_name(name), name) for name in dataset_names]
    if isinstance(class_mapping, (str, bytes)) or len(class_mapping) != len(dataset_names):
        raise ValueError(
            f"{mapping_argument} lists {class_mapping!r}, but the dataset has {len(dataset_names)} classes "
            f"{dataset_names}: give the model's class of each dataset label, in label order."
        )
    return list(class_mapping)


def align_labels(
    dataset_names: Sequence[str],
    model_names: Sequence[str],
    class_mapping: dict[str, str] | Sequence[str | int] | None = None,
    *,
    split: str = "dataset",
    mapping_argument: str = "`class_mapping`",
) -> list[int] | None:
    r"""
    The model's class index of each dataset label, matching classes by name (see [`clean_class_name`]).

    Args:
        dataset_names (`list[str]`): the dataset's class names, in label order (its `ClassLabel` names).
        model_names (`list[str]`): the model's class names, in label order (its `id2label`).
        class_mapping (`dict[str, str]` or `list[str | int]`, *optional*):
            An explicit mapping: `{dataset_name: model_name}` for the classes whose names differ (the rest match by
            name), or a list with the model's class (name or index) of each dataset label, in label order. With an
            explicit mapping, model classes the dataset lacks, and several dataset classes on one model class, are
            accepted.
        split (`str`, *optional*): the split's name, for messages.
        mapping_argument (`str`, *optional*): how the caller spells `class_mapping`, for messages.

    Returns:
        `None` when label `i` of the dataset is the model's class `i` for every `i`, else the list `map` with
        `map[dataset_label] = model_label`. Raises a `ValueError` naming the classes only in the dataset and only
        in the model when the names do not match.
    """
    dataset_names, model_names = [str(n) for n in dataset_names], [str(n) for n in model_names]
    index = {clean_class_name(name): i for i, name in enumerate(model_names)}
    targets = _mapping_targets(dataset_names, class_mapping, mapping_argument)
    label_map = [
        int(t) if isinstance(t, (int, np.integer)) and 0 <= t < len(model_names) else index.get(clean_class_name(t))
        for t in targets
    ]
    hit = {i for i in label_map if i is not None}
    unmatched = [name for name, i in zip(dataset_names, label_map, strict=True) if i is None]
    collide = class_mapping is None and len(hit) < len(label_map) - len(unmatched)
    if unmatched or collide or (class_mapping is None and len(hit) < len(model_names)):
        shown = [n if t == n else f"{n} -> {t}" for n, t in zip(dataset_names, targets, strict=True)]
        raise ValueError(
            f"The `{split}` split's classes do not match the model's: the `{split}` split has {len(dataset_names)} "
            f"classes {shown}, the model {len(model_names)} {model_names}; only in the dataset: {unmatched}; only "
            f"in the model: {[n for i, n in enumerate(model_names) if i not in hit]}. Classes are matched by name "
            "(`_` as a space, ignoring case). If the model renamed this dataset's classes, pass the model's names "
            f"as {mapping_argument}: `{{dataset_name: model_name}}`, or the model's name of each dataset label in "
            "label order."
        )
    return None if label_map == list(range(len(model_names))) else label_map


def declared_mapping(dataset_names: Sequence[str] | None, model_names: Sequence[str]) -> list[str] | None:
    """The `class_mapping` that a rename declares: `None` when the model's classes are the dataset's (in any order:
    then they are matched by name), else the model's names themselves, read as the model's name of each dataset
    label in label order (a preset's renames, `--class_names` with other names)."""
    if dataset_names is None:
        return None
    if sorted(map(clean_class_name, dataset_names)) == sorted(map(clean_class_name, model_names)):
        return None
    clean_data = [clean_class_name(n) for n in dataset_names]
    swapped = [
        f"{data!r} -> {model!r} (the dataset's {dataset_names[clean_data.index(clean_class_name(model))]!r})"
        for data, model in zip(dataset_names, model_names, strict=False)
        if clean_class_name(model) in clean_data and clean_class_name(model) != clean_class_name(data)
    ]
    if swapped:  # a positional rename that gives a class another of the dataset's own names: surely a mistake
        raise ValueError(
            f"The renamed classes {list(model_names)} would give dataset classes the names of other dataset classes: "
            f"{'; '.join(swapped)}. List the model's name of each dataset label in label order "
            f"(the dataset's classes: {list(dataset_names)})."
        )
    return list(model_names)


def remap_labels(labels, label_map: Sequence[int] | None) -> torch.Tensor:
    """Dataset labels [N] as the model's class indices [N] (`label_map[label]`; unchanged when `label_map` is None)."""
    labels = torch.as_tensor(labels if isinstance(labels, torch.Tensor) else list(labels), dtype=torch.long)
    if label_map is None:
        return labels
    table = torch.as_tensor(label_map, dtype=torch.long)
    bad = labels[(labels < 0) | (labels >= len(table))]
    if bad.numel():
        raise ValueError(f"Labels {sorted(set(bad.tolist()))[:10]} lie outside the dataset's {len(table)} classes.")
    return table[labels]


def _check_label_range(labels, num_classes: int, split: str, label_column: str) -> None:
    """Raise a `ValueError` naming the split and column when labels (without class names) are not class indices."""
    labels = np.asarray(labels if isinstance(labels, (np.ndarray, torch.Tensor)) else list(labels))
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"The `{split}` split's column {label_column!r} holds {labels.dtype} values (e.g. {labels.flat[0]!r}), "
            "not class indices; use a `ClassLabel` column or encode the labels first."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"The `{split}` split's labels in column {label_column!r} span {int(labels.min())}..{int(labels.max())}, "
            f"outside the model's {num_classes} classes [0, {num_classes}) (the column has no class names, so "
            "labels are the model's class indices)."
        )


def check_dataset(
    dataset_or_dict,
    model_class_names: Sequence[str],
    *,
    image_column: str = "image",
    label_column: str = "label",
    class_mapping: dict[str, str] | Sequence[str | int] | None = None,
    required_splits: Sequence[str] = (),
    mapping_argument: str = "`class_mapping`",
) -> list[int] | None:
    r"""
    The one check where data enters (the API's `build_cache`, `fit_training_free`, `hf-tip build` / `evaluate` and
    fine-tuning): the required splits exist and every split is non-empty, the columns exist, every split has the
    same `ClassLabel` names, and these match the model's classes by name (see [`align_labels`]). A label column
    without class names is read as the model's class indices (`class_mapping` as a list can remap it) and its range
    is checked. Raises a `ValueError` naming the split, column or classes.

    Args:
        dataset_or_dict (`datasets.Dataset` or `datasets.DatasetDict`): one split, or splits by name.
        model_class_names (`list[str]`): the model's classes, in label order.
        image_column, label_column (`str`, *optional*): the columns.
        class_mapping (`dict` or `list`, *optional*): see [`align_labels`].
        required_splits (`list[str]`, *optional*): splits that must be present (`"train"`, `"validation"`).
        mapping_argument (`str`, *optional*): how the caller spells `class_mapping`, for messages.

    Returns:
        The label map shared by every split (see [`align_labels`]): apply it with [`remap_labels`].
    """
    is_dict = isinstance(dataset_or_dict, Mapping)
    splits = dict(dataset_or_dict.items()) if is_dict else {"dataset": dataset_or_dict}
    for split in required_splits if is_dict else ():
        require_split(splits, split)
    reference = None
    for name, split in splits.items():
        check_columns(split, image_column, label_column)
        if len(split) == 0:
            raise ValueError(f"The `{name}` split is empty: it holds no images.")
        names = dataset_class_names(split, label_column)
        if reference is not None and names != reference[1]:
            raise ValueError(
                f"The `{name}` split's classes {names} are not the `{reference[0]}` split's {reference[1]} "
                f"(column {label_column!r}). Use folders with the same class sub-folders in every split."
            )
        reference = reference or (name, names)
    names = reference[1] if reference is not None else None
    if names is not None:
        return align_labels(
            names, model_class_names, class_mapping, split=reference[0], mapping_argument=mapping_argument
        )
    listed = class_mapping is not None and not isinstance(class_mapping, Mapping)
    num_labels = len(class_mapping) if listed else len(model_class_names)
    for name, split in splits.items():
        _check_label_range(split[label_column], num_labels, name, label_column)
    if class_mapping is None:
        return None
    return align_labels(
        [str(i) for i in range(num_labels)],
        model_class_names,
        class_mapping,
        split=reference[0],
        mapping_argument=mapping_argument,
    )


def stratified_split(
    labels: Sequence[int],
    fractions: dict[str, float],
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    remainder: str = "train",
    min_remainder: int = 1,
) -> dict[str, list[int]]:
    r"""
    Split example indices per class into `{name: fraction}` parts and the rest (`remainder`), disjoint and sorted.

    Within each class, examples are ordered by `shuffle_keys(index, seed, "split")`; each part takes the next
    `max(1, round(fraction * n))` of them (none for a fraction of 0), while there are any. Every class keeps at least
    `min_remainder` examples in `remainder`: a class too small for that raises a `ValueError` naming it and its count.

    Args:
        labels (`list[int]` of length `N`): the class index of each example.
        fractions (`dict[str, float]`): the fraction of each class that goes to each part, each in `[0, 1)`.
        seed (`int`, *optional*, defaults to 0): the split's seed.
        class_names (`list[str]`, *optional*): names for the error message.
        remainder (`str`, *optional*, defaults to `"train"`): the name of the part that keeps the rest.
        min_remainder (`int`, *optional*, defaults to 1): the fewest examples of a class that `remainder` keeps.
    """
    for name, fraction in fractions.items():
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise ValueError(f"The `{name}` fraction must be a number in [0, 1), got {fraction!r}.")
    labels = np.asarray(labels).reshape(-1)
    keys = shuffle_keys(np.arange(labels.size), seed, "split")
    parts: dict[str, list[int]] = {name: [] for name in [*fractions, remainder]}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(keys[members], kind="stable")]
        counts = [max(1, round(f * len(members))) if f > 0 else 0 for f in fractions.values()]
        budget = len(members) - min_remainder  # what the parts may take, in order, while it lasts
        if budget < 1 and any(counts):
            name = class_names[int(label)] if class_names is not None else int(label)
            wanted = dict(zip(fractions, counts, strict=True))
            raise ValueError(
                f"Class {name!r} has {len(members)} example(s): too few to give {wanted} and keep {min_remainder} "
                f"in `{remainder}`. Add examples of it, or lower the fraction."
            )
        start = 0
        for name, count in zip(fractions, counts, strict=True):
            count = max(0, min(count, budget - start))
            parts[name] += members[start : start + count].tolist()
            start += count
        parts[remainder] += members[start:].tolist()
    return {name: sorted(int(i) for i in indices) for name, indices in parts.items()}


def sample_few_shot(
    labels: Sequence[int],
    num_shots: int,
    seed: int = 1,
    class_names: Sequence[str] | None = None,
    allow_fewer: bool = False,
) -> list[int]:
    """Indices of exactly `num_shots` examples per class, grouped by class in class order, ascending within a class.

    Each class keeps its `num_shots` examples of smallest `shuffle_keys(index, seed)`: the same labels, shots and seed
    give the same indices on every machine, process and NumPy version, and the `K`-shot set is contained in the
    `K+1`-shot set. Classes with fewer than `num_shots` examples raise a `ValueError` naming them, unless
    `allow_fewer=True`, which takes all they have.
    """
    if isinstance(num_shots, bool) or not isinstance(num_shots, (int, np.integer)) or num_shots < 1:
        raise ValueError(f"`num_shots` must be an integer >= 1, got {num_shots!r}.")
    labels = np.asarray(labels)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Labels must be integer class indices, got dtype {labels.dtype} (e.g. {labels.flat[0]!r}); "
            "use a `ClassLabel` column or encode the labels first."
        )
    labels = labels.astype(np.int64).reshape(-1)
    num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Labels must lie in [0, {num_classes}); found {int(labels.min())}..{int(labels.max())}.")
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    short = {c: len(idx) for c, idx in enumerate(by_class) if len(idx) < num_shots}
    if short and not allow_fewer:
        names = {(class_names[c] if class_names is not None else c): n for c, n in short.items()}
        raise ValueError(
            f"{len(short)} class(es) have fewer than {num_shots} examples (class: count): {names}. "
            "Lower `num_shots` or pass `allow_fewer=True` (`--allow_fewer_shots`) to take what there is."
        )
    keys = shuffle_keys(np.arange(labels.size), seed)
    picked: list[int] = []
    for idx in by_class:
        chosen = idx[np.argsort(keys[idx], kind="stable")[:num_shots]]
        picked.extend(int(i) for i in np.sort(chosen))
    return picked


def _describe_bad_image(dataset, column: str, error: Exception) -> str:
    """Find the first row of `column` that does not decode and describe it (its row, file and PIL's error)."""
    feature = dataset.features[column]
    undecoded = dataset.cast_column(column, type(feature)(decode=False))[column]
    for row, value in enumerate(undecoded):
        path, data = (value.get("path"), value.get("bytes")) if isinstance(value, dict) else (value, None)
        try:
            with Image.open(io.BytesIO(data) if data is not None else path) as image:
                image.load()
        except Exception as bad:  # noqa: BLE001 - any decoding failure is the one to report
            return f"Cannot read the image in row {row} of column {column!r} ({path or 'embedded bytes'}): {bad}"
    return f"Cannot read an image of column {column!r}: {error}"


def load_images(dataset, column: str = "image") -> list[Image.Image]:
    """The decoded images of a `datasets.Dataset` column; a file that does not decode (truncated, corrupt, not an
    image) raises a `ValueError` naming its path and row."""
    try:
        return list(dataset[column])
    except (OSError, SyntaxError, ValueError) as error:
        try:
            message = _describe_bad_image(dataset, column, error)
        except Exception:  # noqa: BLE001 - no undecoded view of this dataset: report the original error
            message = f"Cannot read an image of column {column!r}: {error}"
        raise ValueError(message + ". Remove or replace the file, then run again.") from error


def few_shot_images(
    dataset,
    class_names: Sequence[str],
    *,
    num_shots: int | None = None,
    seed: int = 1,
    image_column: str = "image",
    label_column: str = "label",
    allow_fewer_shots: bool = False,
    class_mapping=None,
) -> tuple[list[Image.Image], torch.Tensor]:
    """A dataset's images and labels in the model's class order (matched by name, see `check_dataset`), sampled to
    `num_shots` per class (seeded by `seed`) when it is given."""
    label_map = check_dataset(
        dataset, class_names, image_column=image_column, label_column=label_column, class_mapping=class_mapping
    )
    labels = remap_labels(dataset[label_column], label_map)
    if num_shots is not None:
        picked = sample_few_shot(labels.tolist(), num_shots, seed, list(class_names), allow_fewer_shots)
        dataset, labels = dataset.select(picked), labels[picked]
    return load_images(dataset, image_column), labels
