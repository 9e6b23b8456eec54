"""The four method models (TIP-X, CLIP-Adapter, linear probe, GDA) fit on tiny random features, search, save, reload
with identical logits (class, Auto classes, remote code without hf_tip) and run in `pipeline`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification, pipeline

from hf_tip import (
    ClipAdapterConfig,
    ClipAdapterForImageClassification,
    GDAConfig,
    GDAForImageClassification,
    LinearProbeForImageClassification,
    TipAdapterForImageClassification,
    TipXConfig,
    TipXForImageClassification,
)

SEARCH = {
    "tip-x": {"search_scale": (9.0, 6.0, 5.0), "search_step": (6, 4, 5)},
    "linear-probe": {"c_grid": [0.1, 1.0, 10.0]},
    "gda": {},
    "clip-adapter": {},
}
CLASSES = {
    "tip-x": TipXForImageClassification,
    "clip-adapter": ClipAdapterForImageClassification,
    "linear-probe": LinearProbeForImageClassification,
    "gda": GDAForImageClassification,
}


def features(model, n_per_class: int, views: int, seed: int):
    """Raw view features [V,N,D] near per-class centres, and labels [N]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(model.num_classes, model.feature_dim, generator=g)
    labels = torch.arange(model.num_classes).repeat(n_per_class)
    return centres[labels] + 0.7 * torch.randn(views, len(labels), model.feature_dim, generator=g), labels


def fitted(name, tiny_clip):
    clip, processor = tiny_clip
    model = CLASSES[name].from_clip(clip, CLASS_NAMES, processor=processor)
    views, labels = features(model, 2, 3, seed=0)
    model.fit(views, labels)
    val, val_labels = features(model, 5, 1, seed=0)
    result = model.search_hyperparameters(val[0], val_labels, **SEARCH[name])
    return model, result


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_fit_search_save_reload_pipeline(name, tiny_clip, tmp_path):
    _, processor = tiny_clip
    model, result = fitted(name, tiny_clip)
    assert model.config.model_type == name and 0 <= result["accuracy"] <= 1
    images = make_images([0, 1, 2], seed=3)
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits
    model.save_pretrained(tmp_path)
    for loader in (CLASSES[name], AutoModelForImageClassification):
        again = loader.from_pretrained(tmp_path)
        assert type(again) is CLASSES[name] and again.config.id2label == model.config.id2label
        with torch.no_grad():
            assert torch.equal(again(pixel_values=pixel_values).logits, logits)
    top = pipeline("image-classification", model=str(tmp_path))(images[0], top_k=1)[0]
    assert top["label"] == CLASS_NAMES[int(logits[0].argmax())]


def test_tip_x_writes_its_search_and_is_tip_adapter_at_gamma_zero(tiny_clip):
    model, result = fitted("tip-x", tiny_clip)
    assert (model.config.alpha, model.config.beta, model.config.gamma) == (
        result["alpha"],
        result["beta"],
        result["gamma"],
    )
    assert torch.equal(model.signature_ranges, result["ranges"])
    embeds = torch.randn(4, model.feature_dim)
    tip = TipAdapterForImageClassification.head_logits(model, embeds / embeds.norm(dim=-1, keepdim=True))
    assert not torch.equal(model(image_embeds=embeds).logits, tip)  # the signature term counts
    model.config.gamma = 0.0
    assert torch.equal(model(image_embeds=embeds).logits, tip)
    with pytest.raises(ValueError, match="gamma"):
        TipXConfig(gamma=-1.0)


def test_gda_and_linear_probe_refuse_to_score_unfitted_and_bad_configs(tiny_clip):
    clip, processor = tiny_clip
    for cls in (GDAForImageClassification, LinearProbeForImageClassification):
        model = cls.from_clip(clip, CLASS_NAMES, processor=processor)
        with pytest.raises(ValueError, match="fit"):
            model(image_embeds=torch.randn(2, model.feature_dim))
    with pytest.raises(ValueError, match="alpha_grid"):
        GDAConfig(alpha_grid=[])
    with pytest.raises(ValueError, match="optimizer"):
        ClipAdapterConfig(optimizer="adam")


def test_clip_adapter_trains_exactly_its_adapter(tiny_clip, tmp_path):
    clip, processor = tiny_clip
    model = ClipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    assert not any(p.requires_grad for p in model.parameters())
    model.enable_training()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"adapter_fc1", "adapter_fc2"}
    assert model.config.optimizer == "sgd" and model.config.learning_rate == 2e-3 and model.config.num_epochs == 200
    views, labels = features(model, 2, 1, seed=1)
    before = model(image_embeds=views[0]).logits.detach()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0, momentum=0.9)
    model(image_embeds=views[0], labels=labels).loss.backward()
    optimizer.step()
    after = model(image_embeds=views[0]).logits.detach()
    assert not torch.equal(before, after)
    model.save_pretrained(tmp_path)
    again = ClipAdapterForImageClassification.from_pretrained(tmp_path)
    assert torch.equal(again(image_embeds=views[0]).logits, after)
    assert not any(p.requires_grad for p in again.parameters())


CHILD = textwrap.dedent(
    """
    import sys

    sys.modules["hf_tip"] = None
    sys.modules["datasets"] = None
    import json

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification

    reference = load_file(sys.argv[1])
    report = {}
    for folder in sys.argv[2:]:
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            logits = model(pixel_values=reference["pixel_values"]).logits
        name = folder.rsplit("/", 1)[-1]
        report[name] = {"module": type(model).__module__, "equal": torch.equal(logits, reference[name])}
    print("REPORT" + json.dumps(report))
    """
)


def test_remote_code_loads_every_method_without_hf_tip(tiny_clip, tmp_path):
    _, processor = tiny_clip
    pixel_values = processor(images=make_images([0, 1, 2], seed=4), return_tensors="pt")["pixel_values"]
    tensors, folders = {"pixel_values": pixel_values}, []
    for name in sorted(CLASSES):
        model, _ = fitted(name, tiny_clip)
        with torch.no_grad():
            tensors[name] = model(pixel_values=pixel_values).logits
        model.save_pretrained(tmp_path / name)
        folders.append(str(tmp_path / name))
        code = {p.name for p in (tmp_path / name).glob("*.py")}
        assert f"modeling_{name.replace('-', '_')}.py" in code and "head_inputs.py" in code or name == "clip-adapter"
    save_file(tensors, tmp_path / "reference.safetensors")
    (tmp_path / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HF_HUB_OFFLINE"}}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "reference.safetensors"), *folders],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    for name in CLASSES:
        assert report[name]["module"].startswith("transformers_modules."), report[name]
        assert report[name]["equal"], (name, report[name])
