"""Half-precision loading (issue 9, item 13): `from_pretrained(folder, dtype=...)` and `pipeline(..., dtype=...)` in
bfloat16 and float16 run, with backbone and adapter tensors in the one dtype, and agree on top-1 with float32."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from transformers import pipeline

from hf_tip import TipAdapterForImageClassification
from hf_tip.backbones import random_backbone


@pytest.fixture(scope="module", params=["clip", "siglip"])
def saved(request, tmp_path_factory):
    clip, processor = random_backbone(request.param, "tiny", seed=0)
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor, alpha=1.0, beta=2.0)
    labels = [c for c in range(3) for _ in range(4)]
    model.build_cache(make_images(labels, seed=1), labels, augment_epochs=1, show_progress=False)
    folder = tmp_path_factory.mktemp(f"{request.param}-fp32")
    model.save_pretrained(folder)
    return folder


def _margin_ok(logits32: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Rows whose float32 top-1 wins by more than half-precision rounding: there top-1 must agree."""
    best = logits32.topk(2, dim=-1).values
    return (best[:, 0] - best[:, 1]) > 0.05 * logits32.abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_loading_agrees_with_float32(saved, dtype):
    images = make_images([c for c in range(3) for _ in range(4)], seed=5)
    reference = TipAdapterForImageClassification.from_pretrained(saved)
    pixel_values = reference.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits32 = reference(pixel_values=pixel_values).logits
    model = TipAdapterForImageClassification.from_pretrained(saved, dtype=dtype)
    assert {model.clip.dtype, model.zero_shot_weights.dtype, model.cache_keys.dtype} == {dtype}
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits
    assert logits.dtype == dtype
    sure = _margin_ok(logits32, logits)
    assert sure.sum() >= len(images) // 2, "the test batch must have clear winners"
    assert torch.equal(logits.float().argmax(-1)[sure], logits32.argmax(-1)[sure])

    classifier = pipeline("image-classification", model=str(saved), dtype=dtype)
    assert classifier.model.clip.dtype == dtype and classifier.model.cache_keys.dtype == dtype
    top = [rows[0]["label"] for rows in classifier(images, top_k=1)]
    expected = [reference.config.id2label[i] for i in logits32.argmax(-1).tolist()]
    assert [t for t, ok in zip(top, sure, strict=True) if ok] == [
        e for e, ok in zip(expected, sure, strict=True) if ok
    ]
