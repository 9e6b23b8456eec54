"""The opt-in thumbnail store of a Tip-Adapter cache: one small uint8 image per cache entry, so that a prediction can
show the labelled examples that drove it (`hf_tip.app.explain`). Off by default (the cache's images may be private);
saved beside the weights as `thumbnails.safetensors` (`thumbnails` uint8 `[NK, h, w, 3]`).

Nothing here imports `datasets`: it ships with the model's remote code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from .images import to_rgb

THUMBNAILS_NAME = "thumbnails.safetensors"
MAX_THUMBNAIL_SIZE = 96  # pixels per side
MAX_THUMBNAIL_BYTES = 64 * 2**20  # the whole store: 64 MiB (about 5,400 entries at 64 px)
NO_THUMBNAILS = (
    "This model stores no cache thumbnails, so the examples behind a prediction cannot be shown. Build the cache with "
    "`model.build_cache(..., store_thumbnails=True)`, or call `model.enable_thumbnails(images=...)` with the cache's "
    "images, then save the model again (thumbnails are off by default: the cache's images may be private)."
)


def check_thumbnail_size(size: int) -> int:
    """`size` if it is an integer in `[8, MAX_THUMBNAIL_SIZE]`; raises a `ValueError` otherwise."""
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_THUMBNAIL_SIZE:
        raise ValueError(f"Thumbnail `size` must be an integer in [8, {MAX_THUMBNAIL_SIZE}] pixels, got {size!r}.")
    return size


def check_store_bytes(num_entries: int, size: int) -> None:
    """Raise a `ValueError` when `num_entries` thumbnails of `size` px exceed `MAX_THUMBNAIL_BYTES`."""
    total = num_entries * size * size * 3
    if total > MAX_THUMBNAIL_BYTES:
        fits = int((MAX_THUMBNAIL_BYTES / (3 * num_entries)) ** 0.5)
        raise ValueError(
            f"{num_entries} thumbnails of {size}x{size} px take {total / 2**20:.1f} MiB, over the store's cap of "
            f"{MAX_THUMBNAIL_BYTES / 2**20:.0f} MiB; use a smaller size (at most {fits} px here) or no thumbnails."
        )


def make_thumbnails(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """uint8 thumbnails `[N, size, size, 3]`: the centre square of each image, resized (bicubic)."""
    out = np.zeros((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        image = to_rgb(image)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        out[i] = np.asarray(square, dtype=np.uint8)
    return torch.from_numpy(out)


def save_thumbnails(thumbnails: torch.Tensor, save_directory: str | os.PathLike) -> None:
    """Write `thumbnails` uint8 `[NK, h, w, 3]` to `save_directory/thumbnails.safetensors`."""
    save_file({"thumbnails": thumbnails.contiguous().cpu()}, os.path.join(save_directory, THUMBNAILS_NAME))


def load_thumbnails(path: str | os.PathLike, cache_size: int) -> torch.Tensor:
    """Read a `thumbnails.safetensors`, checking dtype, shape, size cap and that it has one thumbnail per cache entry."""
    thumbnails = load_file(path).get("thumbnails")
    if thumbnails is None or thumbnails.dtype != torch.uint8 or thumbnails.ndim != 4 or thumbnails.shape[-1] != 3:
        raise ValueError(f"{path} does not hold a uint8 `thumbnails` tensor of shape [NK, h, w, 3].")
    if thumbnails.shape[0] != cache_size:
        raise ValueError(f"{path} holds {thumbnails.shape[0]} thumbnails for a cache of {cache_size} entries.")
    check_thumbnail_size(int(thumbnails.shape[1]))
    check_store_bytes(cache_size, int(thumbnails.shape[1]))
    return thumbnails
