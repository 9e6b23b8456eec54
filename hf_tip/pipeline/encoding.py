"""Encoding a split once: its features and labels, stored as safetensors keyed by what computed them."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..data.datasets import align_labels, load_images
from ..models.features import _pixel_batches, encode_batches, feature_dim


def backbone_fingerprint(clip) -> str:
    """A short hash identifying what a CLIP backbone's image tower computes: its config, the dtype and autocast state
    it runs in, and a strided sample (up to 4096 values) of every one of its weights."""
    device_type = clip.logit_scale.device.type
    autocast = torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type)
    digest = hashlib.sha256(clip.config.vision_config.to_json_string().encode())
    digest.update(f"{clip.config.model_type}|{feature_dim(clip.config)}|{clip.dtype}|autocast={autocast}".encode())
    tower = list(clip.vision_model.named_parameters())
    if getattr(clip, "visual_projection", None) is not None:  # CLIP, Chinese-CLIP, AltCLIP; SigLIP has none
        tower += list(clip.visual_projection.named_parameters())
    for name, tensor in tower:
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy()
        digest.update(f"{name}{tuple(tensor.shape)}".encode() + sample.tobytes())
    return digest.hexdigest()[:16]


def _read_feature_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The features [N,D] and labels [N] of a cache file; `None` (with a warning: it is encoded again) when the file
    is truncated, corrupt or not a feature cache."""
    try:
        stored = load_file(path)
        embeds, labels = stored["image_embeds"], stored["labels"]
        if embeds.ndim != 2 or labels.shape != embeds.shape[:1] or not bool(torch.isfinite(embeds).all()):
            raise ValueError(f"features {tuple(embeds.shape)} and labels {tuple(labels.shape)} do not match")
    except Exception as error:  # noqa: BLE001 - any unreadable cache means the same: encode again
        warnings.warn(
            f"The feature cache {str(path)!r} is unreadable ({type(error).__name__}: {error}); encoding again.",
            UserWarning,
            stacklevel=3,
        )
        return None
    return embeds, labels


@torch.no_grad()
def encode_dataset(
    clip,
    image_processor,
    dataset,
    image_column: str = "image",
    label_column: str = "label",
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
    class_names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features [N,D] (float32, CPU) and labels [N] of a `datasets.Dataset` split, through the eval
    transform of `image_processor` (resize, centre crop, normalise).

    With `class_names` (the model's classes in label order, e.g. `list(model.config.id2label.values())`), the
    dataset's `ClassLabel` ids are turned into the model's class indices by name (as `build_cache` does), and a
    `ValueError` names the classes that do not match; without it, the labels are the dataset's own ids.

    With `cache_dir`, the result is stored as safetensors keyed by the backbone's fingerprint, the dataset's
    `_fingerprint`, the columns and the image processor's settings, and later calls read it instead of encoding again.
    """
    label_map = None
    if class_names is not None:
        feature = getattr(dataset, "features", {}).get(label_column) if hasattr(dataset, "features") else None
        if not hasattr(feature, "names"):
            raise ValueError(
                f"`class_names` was given but the dataset's {label_column!r} column is not a `ClassLabel`, so its "
                "labels cannot be matched to the classes by name; cast it with `dataset.cast_column`."
            )
        label_map = align_labels(feature.names, list(class_names), split="dataset")
    path = None
    fingerprint = getattr(dataset, "_fingerprint", None)
    if cache_dir is not None and fingerprint is not None:
        transform = image_processor.to_json_string() if hasattr(image_processor, "to_json_string") else ""
        key = f"{backbone_fingerprint(clip)}-{fingerprint}-{image_column}-{label_column}-{transform}"
        path = Path(cache_dir) / f"features-{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"
        if path.is_file():
            stored = _read_feature_cache(path)
            if stored is not None:
                return stored[0], _remap(stored[1], label_map)
    images = load_images(dataset, image_column)
    labels = torch.as_tensor(list(dataset[label_column]), dtype=torch.long)
    bar = tqdm(total=len(labels), desc="Encoding images", unit="img", disable=not show_progress)
    embeds = encode_batches(clip, _pixel_batches(images, image_processor, batch_size), progress=bar.update)
    bar.close()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"image_embeds": embeds.contiguous(), "labels": labels}, tmp)
        os.replace(tmp, path)  # atomic: concurrent processes never read a half-written file
    return embeds, _remap(labels, label_map)


def _remap(labels: torch.Tensor, label_map: list[int] | None) -> torch.Tensor:
    """The model's class index of each dataset label ([N] -> [N]); unchanged without a map."""
    return labels if label_map is None else torch.as_tensor(label_map, dtype=torch.long)[labels]
