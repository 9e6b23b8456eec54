"""Randomly initialised CLIP backbones for offline tests, demos and timing benchmarks.

They carry no learned knowledge: accuracies measured with them show the mechanics, never CLIP's ability.
"""

from __future__ import annotations

from typing import Literal

import torch
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

from .data import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

# (image size, patch, vision hidden/layers/heads, text hidden/layers/heads, projection dim)
SIZES = {
    "tiny": (30, 2, 32, 2, 4, 32, 2, 4, 16),
    "small": (64, 8, 128, 4, 4, 64, 2, 4, 64),
    "vit-b-32": (224, 32, 768, 12, 12, 512, 12, 8, 512),
}


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, the alphabet of CLIP's byte-level BPE."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def byte_level_clip_tokenizer(model_max_length: int = 32) -> CLIPTokenizer:
    """A CLIP tokenizer with no merges over a byte-level alphabet: every character is a token (no files needed)."""
    chars = _byte_alphabet()
    vocab = {
        token: i for i, token in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])
    }
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def random_clip(size: Literal["tiny", "small", "vit-b-32"] = "tiny", seed: int = 0) -> tuple[CLIPModel, CLIPProcessor]:
    """A seeded, randomly initialised `CLIPModel` of the given size and a matching `CLIPProcessor`."""
    image, patch, v_hidden, v_layers, v_heads, t_hidden, t_layers, t_heads, proj = SIZES[size]
    max_length = 77 if size == "vit-b-32" else 32
    tokenizer = byte_level_clip_tokenizer(max_length)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=t_hidden,
            intermediate_size=4 * t_hidden,
            num_hidden_layers=t_layers,
            num_attention_heads=t_heads,
            max_position_embeddings=max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            image_size=image,
            patch_size=patch,
            hidden_size=v_hidden,
            intermediate_size=4 * v_hidden,
            num_hidden_layers=v_layers,
            num_attention_heads=v_heads,
        ),
        projection_dim=proj,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    # the PIL backend by name: the same pixels with or without torchvision, and no fallback warning at import
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image},
        crop_size={"height": image, "width": image},
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
