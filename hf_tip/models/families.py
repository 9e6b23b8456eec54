"""What differs between CLIP-family dual encoders, in one table: prompt padding, zero-shot scoring, image inputs.

Every family is a transformers model with `get_image_features` / `get_text_features`, a `logit_scale` and, for the
sigmoid-trained SigLIP families, a `logit_bias`. Zero-shot logits are `exp(logit_scale) · cos (+ logit_bias)`, as each
model's own `forward` computes `logits_per_image`. A family not listed is read as CLIP (longest padding, no bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class Family:
    """How one dual-encoder family is prompted and scored.

    Args:
        padding (`"longest"` or `"max_length"`): the prompt padding the model was trained with. SigLIP pools the last
            position, so its prompts are padded to `max_position_embeddings` (64 for the released checkpoints).
        logit_bias (`bool`): whether zero-shot logits add the model's `logit_bias` (sigmoid-trained families).
        patch_inputs (`bool`): whether the vision tower takes patch sequences `[B,N,p·p·3]` with
            `pixel_attention_mask` `[B,N]` and `spatial_shapes` `[B,2]` (SigLIP 2's NaFlex) instead of `[B,3,H,W]`.
    """

    padding: Literal["longest", "max_length"] = "longest"
    logit_bias: bool = False
    patch_inputs: bool = False


FAMILIES: dict[str, Family] = {
    "clip": Family(),
    "chinese_clip": Family(),
    "altclip": Family(),
    "siglip": Family(padding="max_length", logit_bias=True),
    "siglip2": Family(padding="max_length", logit_bias=True, patch_inputs=True),
}


def family_of(backbone_config) -> Family:
    """The family of a backbone configuration (by its `model_type`; CLIP's rules for one not listed)."""
    return FAMILIES.get(getattr(backbone_config, "model_type", "clip"), Family())


def text_inputs(tokenizer, texts: list[str], backbone_config) -> dict:
    """Tokenised prompts with the family's padding (`max_length` = the text tower's positions for SigLIP)."""
    if family_of(backbone_config).padding == "max_length":
        length = backbone_config.text_config.max_position_embeddings
        return tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return tokenizer(texts, padding=True, truncation=True, return_tensors="pt")


def image_inputs(
    backbone_config,
    pixel_values: torch.Tensor,
    pixel_attention_mask: torch.Tensor | None = None,
    spatial_shapes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The vision tower's inputs. SigLIP 2 takes patch sequences: images `[B,3,H,W]` (our augmented views) are cut
    into `[B,(H/p)(W/p),p·p·3]` patches in its processor's order, with a full mask and their grid shape."""
    if not family_of(backbone_config).patch_inputs:
        return {"pixel_values": pixel_values}
    if pixel_values.ndim == 4:
        patch = backbone_config.vision_config.patch_size
        b, c, height, width = pixel_values.shape
        rows, cols = height // patch, width // patch
        patches = pixel_values[:, :, : rows * patch, : cols * patch].reshape(b, c, rows, patch, cols, patch)
        pixel_values = patches.permute(0, 2, 4, 3, 5, 1).reshape(b, rows * cols, patch * patch * c)
        pixel_attention_mask = torch.ones(b, rows * cols, dtype=torch.long, device=pixel_values.device)
        spatial_shapes = torch.tensor([[rows, cols]] * b, dtype=torch.long, device=pixel_values.device)
    if pixel_attention_mask is None or spatial_shapes is None:
        raise ValueError(
            "SigLIP 2 patch inputs `pixel_values` [B, N, p*p*3] need `pixel_attention_mask` and `spatial_shapes` "
            "(pass everything its processor returns)."
        )
    return {
        "pixel_values": pixel_values,
        "pixel_attention_mask": pixel_attention_mask,
        "spatial_shapes": spatial_shapes,
    }


def default_image_size(backbone_config) -> int:
    """The square input side the vision tower was built for (SigLIP 2: √num_patches · patch size)."""
    vision = backbone_config.vision_config
    size = getattr(vision, "image_size", None)
    if size:
        return int(size)
    return int(math.isqrt(vision.num_patches) * vision.patch_size)


def logit_bias(backbone) -> torch.Tensor | None:
    """The backbone's zero-shot logit bias (a `[1]` tensor) for the sigmoid families, else `None`."""
    return backbone.logit_bias if family_of(backbone.config).logit_bias else None


__all__ = ["FAMILIES", "Family", "default_image_size", "family_of", "image_inputs", "logit_bias", "text_inputs"]
