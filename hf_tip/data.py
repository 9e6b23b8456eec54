"""Few-shot sampling, column checks and image transforms without torchvision (PIL + torch only).

Nothing here imports `datasets`: a `datasets.Dataset` is used through its public attributes (`column_names`,
`features`, `select`, indexing), so this module also ships with the model's remote code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_columns(dataset, *columns: str) -> None:
    """Raise a `ValueError` naming each missing column and listing the dataset's columns."""
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Column(s) {missing} not found in the dataset; its columns are {dataset.column_names}. "
            "Pass `image_column=` / `label_column=` (`--image_column` / `--label_column`) to choose others."
        )


def dataset_class_names(dataset, label_column: str = "label") -> list[str] | None:
    """The `ClassLabel` names of a dataset's label column, or `None` when it has none."""
    feature = getattr(dataset, "features", {}).get(label_column) if hasattr(dataset, "features") else None
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays: a fixed bijection, the same on every machine and NumPy version."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def shuffle_keys(indices: np.ndarray, seed: int) -> np.ndarray:
    """A seeded pseudo-random uint64 key per example index (distinct indices get distinct keys); sorting by key is a
    seeded shuffle that depends only on `(seed, index)`: not on NumPy's generator algorithms, the platform or the
    other examples."""
    base = _splitmix64(np.array([seed % 2**64], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    return _splitmix64(base ^ np.asarray(indices, dtype=np.uint64))


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
    image = random_resized_crop(image.convert("RGB"), size, generator)
    if torch.rand(1, generator=generator).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def to_pixel_values(
    images: Sequence[Image.Image], mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> torch.Tensor:
    """Stack equally sized RGB PIL images into normalised pixel values [B,3,H,W]."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images]) / 255.0
    pixels = torch.from_numpy(array).permute(0, 3, 1, 2)
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
