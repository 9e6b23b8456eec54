"""Randomly initialised dual encoders (CLIP, SigLIP, SigLIP 2, Chinese-CLIP, AltCLIP) for offline tests, demos and
timing benchmarks.

They carry no learned knowledge: accuracies measured with them show the mechanics, never CLIP's ability.
"""

from __future__ import annotations

from typing import Literal

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AltCLIPConfig,
    AltCLIPModel,
    AltCLIPProcessor,
    ChineseCLIPConfig,
    ChineseCLIPImageProcessorPil,
    ChineseCLIPModel,
    ChineseCLIPProcessor,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Siglip2Config,
    Siglip2ImageProcessorPil,
    Siglip2Model,
    Siglip2Processor,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    SiglipProcessor,
)

from .models.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

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


# --------------------------------------------------------------------------------------------- other families
CHARS = [chr(c) for c in range(32, 127)]  # printable ASCII: every prompt character is a token of its own
FAMILY_NAMES = ("clip", "siglip", "siglip2", "chinese_clip", "altclip")


def char_tokenizer(
    specials: list[str], template: tuple[str, ...], pad: str, unk: str, model_max_length: int, model: str = "WordLevel"
) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose words are single characters (so distinct class names always get distinct prompts), over a
    `tokenizers` WordLevel (SigLIP, AltCLIP) or WordPiece (Chinese-CLIP, BERT-style) vocabulary; `template` wraps each
    text with special tokens (`$A` stands for the text)."""
    vocab = {token: i for i, token in enumerate([*specials, *CHARS])}
    if model == "WordPiece":
        backend = Tokenizer(models.WordPiece(vocab, unk_token=unk))
    else:
        backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    single = " ".join(template)
    backend.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, vocab[t]) for t in template if t != "$A"]
    )
    named = {"pad_token": pad, "unk_token": unk}
    for key, token in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("mask_token", "[MASK]"), ("bos_token", "<s>")):
        if token in vocab:
            named[key] = token
    if "</s>" in vocab:
        named["eos_token"] = "</s>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=model_max_length, **named)


def _vision(size: str) -> dict:
    image, patch, hidden, layers, heads = SIZES[size][:5]
    return dict(
        image_size=image,
        patch_size=patch,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
    )


def _text(size: str, vocab_size: int, max_length: int) -> dict:
    hidden, layers, heads = SIZES[size][5:8]
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_length,
    )


def _random_siglip(size: str, version: int):
    """SigLIP (version 1) or SigLIP 2: image and text towers of the same width (SigLIP has no projection)."""
    tokenizer = char_tokenizer(["<pad>", "</s>", "<unk>"], ("$A", "</s>"), "<pad>", "<unk>", 64)
    vision = _vision(size)
    vision["hidden_size"] = SIZES[size][5]  # text width: the shared embedding dim
    vision["intermediate_size"] = 4 * vision["hidden_size"]
    text = _text(size, len(tokenizer), 64)
    text.update(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    mean = std = [0.5, 0.5, 0.5]
    if version == 1:
        config = SiglipConfig(text_config=text, vision_config=vision)
        side = vision["image_size"]
        processor = SiglipProcessor(
            image_processor=SiglipImageProcessorPil(
                size={"height": side, "width": side}, image_mean=mean, image_std=std
            ),
            tokenizer=tokenizer,
        )
        return SiglipModel, config, processor
    side = vision.pop("image_size") // vision["patch_size"]
    vision["num_patches"] = side * side
    config = Siglip2Config(text_config=text, vision_config=vision)
    image_processor = Siglip2ImageProcessorPil(
        patch_size=vision["patch_size"], max_num_patches=side * side, image_mean=mean, image_std=std
    )
    return Siglip2Model, config, Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer)


def _random_chinese_clip(size: str):
    """Chinese-CLIP: a BERT text tower over a WordPiece vocabulary ([CLS] text [SEP])."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = char_tokenizer(specials, ("[CLS]", "$A", "[SEP]"), "[PAD]", "[UNK]", 64, model="WordPiece")
    text = _text(size, len(tokenizer), 64)
    text.update(pad_token_id=tokenizer.pad_token_id)
    config = ChineseCLIPConfig(text_config=text, vision_config=_vision(size), projection_dim=SIZES[size][8])
    side = SIZES[size][0]
    image_processor = ChineseCLIPImageProcessorPil(
        size={"height": side, "width": side}, crop_size={"height": side, "width": side}
    )
    return ChineseCLIPModel, config, ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _random_altclip(size: str):
    """AltCLIP: an XLM-R text tower (<s> text </s>, pad id 1, positions offset past the pad id)."""
    tokenizer = char_tokenizer(["<s>", "<pad>", "</s>", "<unk>"], ("<s>", "$A", "</s>"), "<pad>", "<unk>", 62)
    text = _text(size, len(tokenizer), 66)
    text.update(pad_token_id=1, bos_token_id=0, eos_token_id=2, project_dim=SIZES[size][8])
    config = AltCLIPConfig(text_config=text, vision_config=_vision(size), projection_dim=SIZES[size][8])
    side = SIZES[size][0]
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )
    return AltCLIPModel, config, AltCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def random_backbone(
    family: Literal["clip", "siglip", "siglip2", "chinese_clip", "altclip"] = "clip",
    size: Literal["tiny", "small", "vit-b-32"] = "tiny",
    seed: int = 0,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A seeded, randomly initialised dual encoder of `family` and `size` and its processor, built offline with no
    files (character-level tokenizers stand in for the real vocabularies).

    Example:

    ```python
    >>> from hf_tip.backbones import random_backbone
    >>> model, processor = random_backbone("siglip", "tiny")
    ```
    """
    if family == "clip":
        return random_clip(size, seed)
    builders = {
        "siglip": lambda: _random_siglip(size, 1),
        "siglip2": lambda: _random_siglip(size, 2),
        "chinese_clip": lambda: _random_chinese_clip(size),
        "altclip": lambda: _random_altclip(size),
    }
    if family not in builders:
        raise ValueError(f"Unknown backbone family {family!r}; choose one of {list(FAMILY_NAMES)}.")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {list(SIZES)}.")
    model_class, config, processor = builders[family]()
    torch.manual_seed(seed)
    return model_class(config).eval(), processor
