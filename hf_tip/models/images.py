"""Images in: conversion to RGB by value range, pixel checks, and the augmentations without torchvision (PIL + torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
