"""Where data enters: dataset and class-name checks, hf-tip's one seeding scheme, few-shot sampling, image
conversion and transforms without torchvision (PIL + torch only).

Nothing here imports `datasets`: a `datasets.Dataset` is used through its public attributes (`column_names`,
`features`, `select`, indexing), so this module also ships with the model's remote code.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


# ---------------------------------------------------------------------------------------------------- class names
def clean_class_name(name: str) -> str:
    """How class names compare: as the prompts read them (`_` is a space), ignoring case and repeated whitespace."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


def check_class_names(names, argument: str = "class_names") -> list[str]:
    """`names` as a list of strings; raises a `ValueError` for a single string (which would name one class per
    character), no names, an empty name, or two names that read the same in prompts (naming them and their
    positions), and a `TypeError` for a non-sequence."""
    if isinstance(names, (str, bytes)):
        raise ValueError(
            f"`{argument}` must be a list of class names, got the string {names!r} (which would make one class per "
            f"character); for one class write [{names!r}]."
        )
    if not isinstance(names, (Sequence, np.ndarray)):
        raise TypeError(f"`{argument}` must be a list of class names, got {type(names).__name__} {names!r}.")
    names = [str(name) for name in names]
    if not names:
        raise ValueError(f"`{argument}` must name at least one class.")
    empty = [i for i, name in enumerate(names) if not clean_class_name(name)]
    if empty:
        raise ValueError(f"`{argument}` has empty name(s) at position(s) {empty}: {names}.")
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        seen.setdefault(clean_class_name(name), []).append(i)
    repeated = {names[ids[0]]: ids for ids in seen.values() if len(ids) > 1}
    if repeated:
        raise ValueError(
            f"`{argument}` names a class more than once, so it would be duplicated in `id2label`: {list(repeated)} "
            f"(positions {repeated}; names compare as the prompts read them: `_` as a space, ignoring case). "
            "Give each class one distinct name."
        )
    return names


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


# ---------------------------------------------------------------------------------------------------------- seeding
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays: a fixed bijection, the same on every machine and NumPy version."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _stream_word(part: int | str) -> np.uint64:
    """A stream label as one uint64: an integer modulo 2**64, a string by the first 8 bytes of its SHA-256."""
    if isinstance(part, str):
        return np.uint64(int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little"))
    if isinstance(part, (bool, float)) or not isinstance(part, (int, np.integer)):
        raise TypeError(f"A seed stream is made of integers and strings, got {part!r}.")
    return np.uint64(int(part) % 2**64)


def _stream_base(seed: int, stream: tuple[int | str, ...]) -> np.ndarray:
    """The uint64 state [1] of stream `(seed, *stream)`; the empty stream is the few-shot sampler's."""
    base = _splitmix64(np.array([_stream_word(seed)], dtype=np.uint64) + _GOLDEN)
    with np.errstate(over="ignore"):
        for part in stream:
            base = _splitmix64((base ^ _stream_word(part)) + _GOLDEN)
    return base


def shuffle_keys(indices: np.ndarray, seed: int, *stream: int | str) -> np.ndarray:
    """A seeded pseudo-random uint64 key per example index (distinct indices get distinct keys); sorting by key is a
    seeded shuffle that depends only on `(seed, *stream, index)`: not on NumPy's generator algorithms, the platform or
    the other examples.

    This is hf-tip's one seeding scheme (SplitMix64): few-shot sampling (`shuffle_keys(indices, seed)`), evaluation
    subsets, carved splits (`"split"`), Tip-Adapter-F's epoch order (`"epoch", epoch`) and each augmented view
    (`"view", view, index`, through [`seeded_generator`]) are streams of it, so none depends on another's draws.
    """
    return _splitmix64(_stream_base(seed, stream) ^ np.asarray(indices, dtype=np.uint64))


def seeded_permutation(n: int, seed: int, *stream: int | str) -> list[int]:
    """A seeded permutation of `range(n)`: the indices sorted by `shuffle_keys(index, seed, *stream)`."""
    return np.argsort(shuffle_keys(np.arange(n), seed, *stream), kind="stable").tolist()


def seeded_generator(seed: int, *stream: int | str) -> torch.Generator:
    """A `torch.Generator` seeded from stream `(seed, *stream)` of [`shuffle_keys`]'s scheme."""
    state = int(_stream_base(seed, stream)[0])
    return torch.Generator().manual_seed(state & 0x7FFF_FFFF_FFFF_FFFF)


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


# ----------------------------------------------------------------------------------------------------------- images
_WHITE = (255, 255, 255)


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """A grey-level `I;16*` / `I` / `F` image as 8-bit `L`, scaled by value range: 16-bit values / 257 (so 65535 is
    255); a float image in [0, 1] times 255; values already in 0..255 (an `I`/`F` image holding 8-bit data) as is."""
    array = np.asarray(image, dtype=np.float64)
    finite = array[np.isfinite(array)]
    top = float(finite.max()) if finite.size else 0.0
    if image.mode == "F" and top <= 1.0:
        scale = 255.0
    elif top <= 255.0 and not image.mode.startswith("I;16"):
        scale = 1.0
    else:
        scale = 1 / 257
    array = np.nan_to_num(array * scale, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    r"""
    An 8-bit RGB copy of a PIL image of any mode, converted by value rather than clipped.

    - 16-bit grey (`I;16`, `I;16B`, `I;16L`, `I` with values above 255): divided by 257, so the full 16-bit range
      maps to 0..255 (PIL's `convert("RGB")` clips at 255: a mid-grey 16-bit image turns white). 32-bit float
      (`F`): [0, 1] times 255, or 16-bit-range values divided by 257.
    - Transparency (`RGBA`, `LA`, `PA`, `La`, `RGBa`, and `P` / `L` / `RGB` with a `transparency` entry): the image
      is composited on white, as viewers show it (dropping the alpha would show whatever colour the transparent
      pixels happen to hold, often black).
    - Palette (`P`), 1-bit (`1`), `CMYK`, `YCbCr`, `HSV`: PIL's conversion.

    Raises a `TypeError` for anything that is not a `PIL.Image.Image`, and a `ValueError` naming the mode when PIL
    cannot convert it.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"Expected a PIL.Image.Image, got {type(image).__module__}.{type(image).__name__}.")
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_8bit(image).convert("RGB")
    try:
        if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, _WHITE + (255,))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as error:
        raise ValueError(f"Cannot convert an image of mode {mode!r} to RGB: {error}") from error


def check_images(images, argument: str = "images") -> list[Image.Image]:
    """`images` as a list of PIL images; raises a `TypeError` naming the first item that is not one (its index and
    type)."""
    if isinstance(images, (str, bytes, Image.Image)) or not hasattr(images, "__iter__"):
        raise TypeError(f"`{argument}` must be a list of PIL images, got {type(images).__name__}.")
    images = list(images)
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"`{argument}[{i}]` is a {type(image).__module__}.{type(image).__name__}, not a PIL.Image.Image; "
                "open files with `PIL.Image.open(path)` and arrays with `PIL.Image.fromarray(array)`."
            )
    return images


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


def check_pixel_values(pixel_values, argument: str = "pixel_values") -> None:
    """Raise a `ValueError` naming the tensor unless it is a floating-point `[B, 3, H, W]` batch of finite values."""
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(
            f"`{argument}` must be a torch.Tensor of shape [B, 3, H, W], got {type(pixel_values).__name__}."
        )
    if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
        raise ValueError(
            f"`{argument}` must have shape [B, 3, H, W] (batch, RGB channels, height, width), got "
            f"{tuple(pixel_values.shape)}; make it with the model's processor from RGB images "
            "(`hf_tip.data.to_rgb` converts grey, palette, 16-bit and RGBA images)."
        )
    if not pixel_values.is_floating_point():
        raise ValueError(f"`{argument}` must be floating point (normalised pixels), got dtype {pixel_values.dtype}.")
    if not torch.isfinite(pixel_values).all():
        raise ValueError(f"`{argument}` holds NaN or inf values.")


def random_resized_crop(
    image: Image.Image,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """torchvision's `RandomResizedCrop` (bicubic) on a PIL image, drawing from `generator`."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=generator).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            break
    else:  # fall back to a central crop with the ratio clamped into range
        in_ratio = width / height
        w, h = (
            (width, round(width / ratio[0]))
            if in_ratio < ratio[0]
            else ((round(height * ratio[1]), height) if in_ratio > ratio[1] else (width, height))
        )
        top, left = (height - h) // 2, (width - w) // 2
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))


def augment(image: Image.Image, size: int, generator: torch.Generator) -> Image.Image:
    """The paper's cache augmentation: random resized crop (scale 0.5–1, bicubic), then a horizontal flip (p 0.5)."""
    image = random_resized_crop(to_rgb(image), size, generator)
    if torch.rand(1, generator=generator).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def to_pixel_values(
    images: Sequence[Image.Image], mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> torch.Tensor:
    """Stack equally sized RGB PIL images into normalised pixel values [B,3,H,W]."""
    array = np.stack([np.asarray(to_rgb(image), dtype=np.float32) for image in images]) / 255.0
    pixels = torch.from_numpy(array).permute(0, 3, 1, 2)
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
