"""Every CLIP family (CLIP, SigLIP, SigLIP 2, Chinese-CLIP, AltCLIP): a tiny random model goes through from_clip ->
build_cache -> search -> save -> reload -> pipeline with equal logits, each with its own prompt padding and scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from transformers import pipeline
from transformers.models.siglip2.image_processing_pil_siglip2 import convert_image_to_patches

from hf_tip import TipAdapterForImageClassification, ZeroShotForImageClassification
from hf_tip.backbones import FAMILY_NAMES, random_backbone
from hf_tip.models.families import family_of, image_inputs, text_inputs
from hf_tip.models.features import _unwrap

TEMPLATES = ["a photo of a {}.", "art of the {}."]


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def backbone_dir(request, tmp_path_factory):
    """(family, folder of a saved tiny backbone and its processor)."""
    model, processor = random_backbone(request.param, "tiny", seed=0)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return request.param, folder


def _inputs(model, images) -> dict:
    return dict(model.processor.image_processor(images, return_tensors="pt"))


def _pipeline_logits(classifier, images) -> torch.Tensor:
    labels = classifier.model.config.id2label
    rows = classifier(images, function_to_apply="none", top_k=len(labels))
    return torch.tensor(
        [[{d["label"]: d["score"] for d in row}[labels[i]] for i in range(len(labels))] for row in rows]
    )


def test_each_family_builds_searches_saves_reloads_and_runs_in_the_pipeline(backbone_dir, tmp_path):
    family, folder = backbone_dir
    model = TipAdapterForImageClassification.from_clip(
        str(folder), CLASS_NAMES, templates=TEMPLATES, search_step=[5, 4]
    )
    assert model.config.backbone_config.model_type == family and model.config.backbone_name_or_path == str(folder)
    labels = [0, 1, 2] * 2
    model.build_cache(make_images(labels, seed=1), labels, augment_epochs=2, show_progress=False)
    val = make_images([0, 1, 2, 2, 1, 0], seed=3)
    with torch.no_grad():
        embeds = model.get_image_features(**_inputs(model, val))
    result = model.search_hyperparameters(embeds, torch.tensor([0, 1, 2, 2, 1, 0]))
    assert model.config.alpha == result["alpha"]

    queries = make_images([0, 1, 2, 1], seed=7)
    with torch.no_grad():
        logits = model(**_inputs(model, queries)).logits
    model.save_pretrained(tmp_path / "full")
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path / "full")
    assert type(loaded.clip) is type(model.clip)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_inputs(loaded, queries)).logits, logits, rtol=1e-5, atol=1e-5)
    classifier = pipeline("image-classification", model=str(tmp_path / "full"))
    torch.testing.assert_close(_pipeline_logits(classifier, queries), logits, rtol=1e-4, atol=1e-4)


def test_siglip_zero_shot_logits_are_scale_times_cosine_plus_bias(backbone_dir):
    family, folder = backbone_dir
    model = ZeroShotForImageClassification.from_clip(str(folder), CLASS_NAMES, templates=["a photo of a {}."])
    images = make_images([0, 1, 2], seed=4)
    backbone, tokenizer = model.clip, model.processor.tokenizer
    prompts = [f"a photo of a {c.replace('_', ' ')}." for c in CLASS_NAMES]
    with torch.no_grad():  # independent of hf_tip's encoders: the model's own calls, padded as its processor pads
        if family in ("siglip", "siglip2"):
            length = backbone.config.text_config.max_position_embeddings
            tokens = tokenizer(prompts, padding="max_length", max_length=length, return_tensors="pt")
        else:
            tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        text = _unwrap(backbone.get_text_features(**tokens))
        image = _unwrap(backbone.get_image_features(**_inputs(model, images)))
        cos = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).t()
        expected = backbone.logit_scale.exp() * cos
        if family in ("siglip", "siglip2"):
            expected = expected + backbone.logit_bias
            # SigLIP's own forward computes the same logits_per_image
            own = backbone(**tokens, **_inputs(model, images)).logits_per_image
            torch.testing.assert_close(own, expected, rtol=1e-5, atol=1e-5)
        logits = model(**_inputs(model, images)).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert (model.logit_bias() is not None) == family_of(backbone.config).logit_bias


def test_siglip_prompts_are_padded_to_the_trained_length():
    model, processor = random_backbone("siglip")
    tokens = text_inputs(processor.tokenizer, ["a", "a much longer prompt"], model.config)
    assert tokens["input_ids"].shape[1] == model.config.text_config.max_position_embeddings
    clip, clip_processor = random_backbone("clip")
    assert text_inputs(clip_processor.tokenizer, ["a", "a b"], clip.config)["input_ids"].shape[1] < 32


def test_siglip2_images_become_patches_in_its_processors_order():
    model, processor = random_backbone("siglip2")
    pixel_values = torch.randn(2, 3, 30, 30)
    inputs = image_inputs(model.config, pixel_values)
    patch = model.config.vision_config.patch_size
    expected = convert_image_to_patches(pixel_values[1].numpy(), patch)
    assert np.array_equal(inputs["pixel_values"][1].numpy(), expected)
    assert inputs["spatial_shapes"].tolist() == [[15, 15]] * 2 and bool(inputs["pixel_attention_mask"].all())
    with pytest.raises(ValueError, match="spatial_shapes"):
        image_inputs(model.config, inputs["pixel_values"])


def test_random_backbone_names_the_families():
    with pytest.raises(ValueError, match="open_clip"):
        random_backbone("open_clip")
    a, _ = random_backbone("siglip", seed=1)
    b, _ = random_backbone("siglip", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
