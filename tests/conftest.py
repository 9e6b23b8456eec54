"""Offline fixtures: a seeded tiny random CLIP with a byte-level tokenizer, and generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hf_tip import TipAdapterForImageClassification
from hf_tip.backbones import random_clip

CLASS_NAMES = ["red_square", "green circle", "blue stripes"]


def make_image(label: int, rng: np.random.Generator, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A noisy image whose dominant colour channel is its label (so classes are separable)."""
    width, height = size
    array = rng.integers(0, 90, size=(height, width, 3))
    array[..., label % 3] += 160
    return Image.fromarray(array.clip(0, 255).astype("uint8"))


def make_images(labels: list[int], seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [make_image(label, rng) for label in labels]


@pytest.fixture(scope="session")
def tiny_clip():
    """(CLIPModel, CLIPProcessor): image 30, patch 2, hidden 32, 2 layers, projection 16; seeded."""
    return random_clip("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory, tiny_clip):
    """A local CLIP checkpoint folder (model + processor), as `from_clip("folder")` expects."""
    model, processor = tiny_clip
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def adapter(tiny_clip):
    """A Tip-Adapter over the tiny CLIP with a 3-class, 2-shot cache built from generated images."""
    model, processor = tiny_clip
    tip = TipAdapterForImageClassification.from_clip(
        model, CLASS_NAMES, templates=["a photo of a {}.", "art of the {}."], processor=processor, alpha=1.5, beta=4.0
    )
    labels = [0, 1, 2, 0, 1, 2]
    tip.build_cache(make_images(labels, seed=1), labels, augment_epochs=2, show_progress=False)
    return tip


@pytest.fixture
def image_dataset():
    """A `datasets.Dataset` (image, label: ClassLabel) with 8 generated images per class."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    labels = [c for c in range(3) for _ in range(8)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=CLASS_NAMES)})
    return Dataset.from_dict({"image": make_images(labels, seed=2), "label": labels}, features=features)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
