"""The only code that calls CLIP's encoders: batching, `no_grad`, L2 normalisation and output unwrapping."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from .cache import normalize


def _unwrap(output) -> torch.Tensor:
    """transformers 5 returns a model output from `get_*_features` (take `pooler_output`); 4.x returned a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def encode_images(clip, pixel_values: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """Image features [B,D] of pixel values [B,3,H,W], on the backbone's device and dtype."""
    param = clip.logit_scale
    features = _unwrap(clip.get_image_features(pixel_values=pixel_values.to(device=param.device, dtype=clip.dtype)))
    return normalize(features) if normalized else features


@torch.no_grad()
def encode_text(clip, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text features [T,D]."""
    device = clip.logit_scale.device
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt")
        out.append(normalize(_unwrap(clip.get_text_features(**tokens.to(device)))).float())
    return torch.cat(out)


def zero_shot_weights(clip, tokenizer, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot classifier W [C,D]: fill each template per class, normalise, average over templates, normalise."""
    texts = [template.format(name) for name in class_names for template in templates]
    features = encode_text(clip, tokenizer, texts).view(len(class_names), len(templates), -1)  # [C,T,D]
    return normalize(features.mean(dim=1))


@torch.no_grad()
def encode_batches(
    clip, batches: Iterable[torch.Tensor], normalized: bool = True, progress: Callable | None = None
) -> torch.Tensor:
    """Concatenated features [N,D] (float32, CPU) of an iterable of pixel batches [b,3,H,W]."""
    out = []
    for pixel_values in batches:
        out.append(encode_images(clip, pixel_values, normalized=normalized).float().cpu())
        if progress is not None:
            progress(pixel_values.shape[0])
    return torch.cat(out)
