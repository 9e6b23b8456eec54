"""Every method on every backbone family it claims (CLIP, SigLIP, SigLIP 2): each of the seven methods is fitted on
features of generated images encoded by a tiny random backbone saved as a folder, searched, saved full and
adapter-only (`save_backbone=False`), reloaded with bit-identical logits, and its `pipeline("image-classification")`
top label is the model's argmax. SigLIP scores `s · cos + b`: each head's zero-shot part carries the bias."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from transformers import AutoModelForImageClassification, pipeline

from hf_tip import (
    ClipAdapterForImageClassification,
    GDAForImageClassification,
    LinearProbeForImageClassification,
    TipAdapterForImageClassification,
    TipXForImageClassification,
    ZeroShotForImageClassification,
)
from hf_tip.backbones import random_backbone
from hf_tip.models.features import encode_images

FAMILIES = ["clip", "siglip", "siglip2"]
TEMPLATES = ["a photo of a {}.", "art of the {}."]
CLASSES = {
    "zero-shot": ZeroShotForImageClassification,
    "linear-probe": LinearProbeForImageClassification,
    "clip-adapter": ClipAdapterForImageClassification,
    "tip-adapter": TipAdapterForImageClassification,
    "tip-adapter-f": TipAdapterForImageClassification,
    "tip-x": TipXForImageClassification,
    "gda": GDAForImageClassification,
}
SEARCH = {
    "linear-probe": {"c_grid": [0.1, 1.0, 10.0]},
    "tip-adapter": {"search_scale": (7.0, 3.0), "search_step": (5, 4)},
    "tip-adapter-f": {"search_scale": (7.0, 3.0), "search_step": (5, 4)},
    "tip-x": {"search_scale": (7.0, 3.0, 2.0), "search_step": (5, 4, 3)},
}
TRAIN_LABELS = [0, 1, 2] * 2
VAL_LABELS = [0, 1, 2, 2, 1, 0]


def _inputs(processor, images) -> dict:
    """What the image processor makes (SigLIP 2: patches, `pixel_attention_mask`, `spatial_shapes`)."""
    return dict(processor.image_processor(images, return_tensors="pt"))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    """(family, backbone folder, raw view features [2,6,D] of the train images, validation features [6,D])."""
    backbone, processor = random_backbone(request.param, "tiny", seed=0)
    if hasattr(backbone, "logit_bias"):  # a random init leaves SigLIP's bias at 0; trained ones are far from it
        backbone.logit_bias.data.fill_(-2.5)
    folder = tmp_path_factory.mktemp(request.param)
    backbone.save_pretrained(folder)
    processor.save_pretrained(folder)
    base = ZeroShotForImageClassification.from_clip(str(folder), CLASS_NAMES, templates=TEMPLATES)
    with torch.no_grad():  # two "views": two draws of the same classes; raw (unnormalised) features, as fit expects
        draws = [_inputs(base.processor, make_images(TRAIN_LABELS, seed=s)) for s in (1, 2)]
        views = torch.stack([encode_images(base.clip, normalized=False, **draw) for draw in draws])
        val = encode_images(base.clip, normalized=False, **_inputs(base.processor, make_images(VAL_LABELS, seed=3)))
    return request.param, folder, views, val


def _train_a_little(model, views: torch.Tensor, labels: torch.Tensor, steps: int = 2) -> None:
    """A few optimizer steps on the trained tensors (`enable_training()`), so a reload has trained values to get
    right (a re-initialised adapter would not equal them)."""
    model.enable_training()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    for step in range(steps):
        model(image_embeds=views[step % len(views)], labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def fitted(method: str, folder, views, val):
    """The method built on the backbone folder, fitted on the view features and searched on validation."""
    model = CLASSES[method].from_clip(str(folder), CLASS_NAMES, templates=TEMPLATES)
    labels = torch.tensor(TRAIN_LABELS)
    if method != "clip-adapter":
        model.fit(views, labels)
    model.search_hyperparameters(val, torch.tensor(VAL_LABELS), **SEARCH.get(method, {}))
    if method in ("clip-adapter", "tip-adapter-f"):
        _train_a_little(model, views, labels)
    return model.eval()


@pytest.mark.parametrize("method", list(CLASSES))
def test_method_fits_searches_saves_reloads_and_runs_in_the_pipeline(method, family, tmp_path):
    name, folder, views, val = family
    model = fitted(method, folder, views, val)
    assert model.config.backbone_config.model_type == name
    queries = make_images([0, 1, 2, 1], seed=7)
    inputs = _inputs(model.processor, queries)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    assert not any(p.name.startswith("tokenizer") for p in (tmp_path / "adapter").iterdir())
    for folder_name, loader in (("full", CLASSES[method]), ("adapter", AutoModelForImageClassification)):
        again = loader.from_pretrained(tmp_path / folder_name)
        assert type(again) is CLASSES[method] and type(again.clip) is type(model.clip)
        assert again.config.save_backbone == (folder_name == "full")
        with torch.no_grad():
            assert torch.equal(again(**_inputs(again.processor, queries)).logits, logits), (method, name, folder_name)
    expected = [CLASS_NAMES[i] for i in logits.argmax(-1).tolist()]
    for folder_name in ("full", "adapter"):
        classifier = pipeline("image-classification", model=str(tmp_path / folder_name))
        assert [row[0]["label"] for row in classifier(queries, top_k=1)] == expected, (method, name, folder_name)


def _own_term(model, embeds: torch.Tensor) -> torch.Tensor:
    """What the head adds to (or, CLIP-Adapter, does to) the zero-shot logits, switched off: its neutral config."""
    neutral = {"tip-adapter": {"alpha": 0.0}, "tip-x": {"alpha": 0.0, "gamma": 0.0}, "gda": {"alpha": 0.0}}
    for key, value in neutral.get(model.config.model_type, {}).items():
        setattr(model.config, key, value)
    if model.config.model_type == "clip-adapter":
        model.config.residual_ratio = 0.0
    return model(image_embeds=embeds).logits


@pytest.mark.parametrize("method", ["tip-adapter", "tip-x", "gda", "clip-adapter"])
def test_each_head_scores_its_zero_shot_part_as_the_backbone_does(method, family):
    """A head switched off gives the backbone's own zero-shot logits (SigLIP: `s · cos + b`, bias included), and
    switched on differs from it by its own term only."""
    name, folder, views, val = family
    model = fitted(method, folder, views, val)
    embeds = val / val.norm(dim=-1, keepdim=True)
    weights, scale = model.zero_shot_weights, model.clip.logit_scale.exp()
    independent = scale * embeds @ weights.T + (model.clip.logit_bias if name != "clip" else 0.0)
    torch.testing.assert_close(model.zero_shot_logits(val), independent, rtol=0, atol=1e-5)
    if name != "clip":
        assert model.clip.logit_bias.item() == -2.5  # the bias this test is about is there
    with torch.no_grad():
        on = model(image_embeds=val).logits
        if method == "gda":  # alpha · (f Gᵀ + b) on top of the zero-shot logits
            head = model.config.alpha * (embeds @ model.gda_weight.T + model.gda_bias)
            torch.testing.assert_close(on - head, independent, rtol=0, atol=1e-4)
        if method == "clip-adapter":  # the adapted feature, scored as any feature
            hidden = torch.relu(torch.relu(embeds @ model.adapter_fc1.T) @ model.adapter_fc2.T)
            adapted = 0.2 * hidden + 0.8 * embeds
            adapted = adapted / adapted.norm(dim=-1, keepdim=True)
            bias = model.clip.logit_bias if name != "clip" else 0.0
            torch.testing.assert_close(on, scale * adapted @ weights.T + bias, rtol=0, atol=1e-5)
        off = _own_term(model, val)
    assert torch.equal(off, model.zero_shot_logits(val))
