"""Adapter-only saves (issue 12, item 2): `save_pretrained(dir, save_backbone=False)` / `push_to_hub(...,
save_backbone=False)` write the adapter's tensors and the image processor only, name the backbone in config.json, and
load back (hf_tip, the Auto class, remote code, the pipeline) with the backbone from its own folder or repo and the
logits of the full save."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from huggingface_hub import HfApi
from safetensors.torch import load_file, save_file
from test_hub import ROOT, commits, hub, hub_api  # noqa: F401  (fixtures: the local Hub on olah)
from transformers import AutoModelForImageClassification, pipeline

from hf_tip import TipAdapterForImageClassification
from hf_tip.backbones import random_backbone

LABELS = [0, 1, 2, 0, 1, 2]


def _build(backbone: str | Path) -> TipAdapterForImageClassification:
    model = TipAdapterForImageClassification.from_clip(
        str(backbone), CLASS_NAMES, templates=["a photo of a {}."], alpha=1.5, beta=4.0
    )
    return model.build_cache(make_images(LABELS, seed=1), LABELS, augment_epochs=1, show_progress=False)


@pytest.fixture(scope="module", params=["clip", "siglip2"])
def backbone_dir(request, tmp_path_factory):
    model, processor = random_backbone(request.param, "tiny", seed=0)
    folder = tmp_path_factory.mktemp(f"{request.param}-backbone")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _logits(model, images) -> torch.Tensor:
    with torch.no_grad():
        return model(**model.processor.image_processor(images, return_tensors="pt")).logits


def _pipeline_logits(classifier, images) -> torch.Tensor:
    labels = classifier.model.config.id2label
    rows = classifier(images, function_to_apply="none", top_k=len(labels))
    return torch.tensor(
        [[{d["label"]: d["score"] for d in row}[labels[i]] for i in range(len(labels))] for row in rows]
    )


def test_adapter_only_save_is_small_and_loads_like_the_full_save(backbone_dir, tmp_path):
    model = _build(backbone_dir)
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    assert model.config.save_backbone is True  # the in-memory model is unchanged

    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert config["save_backbone"] is False and config["backbone_name_or_path"] == str(backbone_dir)
    weights = load_file(tmp_path / "adapter" / "model.safetensors")
    assert set(weights) == {"zero_shot_weights", "cache_keys", "cache_labels"}
    assert (tmp_path / "adapter" / "preprocessor_config.json").is_file()
    assert not (tmp_path / "adapter" / "tokenizer.json").exists()  # the tokenizer is the backbone's
    size = sum(os.path.getsize(tmp_path / "adapter" / name) for name in ("model.safetensors", "config.json"))
    assert size < 8_000, size  # a few KB; the full save holds the backbone
    assert os.path.getsize(tmp_path / "full" / "model.safetensors") > 20 * os.path.getsize(
        tmp_path / "adapter" / "model.safetensors"
    )

    images = make_images([0, 1, 2, 1], seed=7)
    full = TipAdapterForImageClassification.from_pretrained(tmp_path / "full")
    expected = _logits(full, images)
    adapter = TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")
    assert adapter.config.save_backbone is False and adapter.processor.tokenizer is not None
    assert torch.equal(_logits(adapter, images), expected)
    auto = AutoModelForImageClassification.from_pretrained(tmp_path / "adapter")
    assert torch.equal(_logits(auto, images), expected)
    classifier = pipeline("image-classification", model=str(tmp_path / "adapter"))
    torch.testing.assert_close(_pipeline_logits(classifier, images), expected, rtol=1e-5, atol=1e-5)
    adapter.save_pretrained(tmp_path / "again")  # stays adapter-only by default
    assert json.loads((tmp_path / "again" / "config.json").read_text())["save_backbone"] is False


def test_adapter_only_refuses_a_backbone_without_a_loadable_name(tiny_clip, tmp_path):
    clip, processor = tiny_clip
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    model.build_cache(make_images(LABELS, seed=1), LABELS, augment_epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="backbone_name_or_path.*in-memory model"):
        model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    with pytest.raises(ValueError, match="backbone_name_or_path"):
        model.push_to_hub("org/never-pushed", save_backbone=False)
    assert not (tmp_path / "adapter").exists()
    model.config.backbone_name_or_path = str(tmp_path / "gone")
    with pytest.raises(ValueError, match="gone.*no folder"):
        model.save_pretrained(tmp_path / "adapter", save_backbone=False)


def test_a_missing_backbone_is_named_with_the_adapter_folder(backbone_dir, tmp_path):
    moved = tmp_path / "backbone"
    shutil.copytree(backbone_dir, moved)
    model = _build(moved)
    model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    shutil.rmtree(moved)
    with pytest.raises(OSError) as caught:
        TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")
    assert str(moved) in str(caught.value) and str(tmp_path / "adapter") in str(caught.value)
    assert "adapter-only" in str(caught.value)


def test_an_adapter_only_save_with_missing_tensors_is_refused(backbone_dir, tmp_path):
    model = _build(backbone_dir)
    model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    weights = load_file(tmp_path / "adapter" / "model.safetensors")
    del weights["cache_keys"]
    save_file(weights, tmp_path / "adapter" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="`cache_keys` is missing"):
        TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")


# A fresh process pulls the adapter repo by id (its backbone from the backbone repo) through the local Hub.
PULL = """
import json, sys
adapter_repo, images_file, out_file = sys.argv[1:4]
sys.modules["hf_tip"] = None  # the repository's own code only
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification, pipeline

images = [Image.open(p).convert("RGB") for p in json.loads(open(images_file).read())]
remote = AutoModelForImageClassification.from_pretrained(adapter_repo, trust_remote_code=True)
pixel_values = remote.processor.image_processor(images, return_tensors="pt")["pixel_values"]
out = {}
with torch.no_grad():
    out["remote"] = remote(pixel_values=pixel_values).logits
classifier = pipeline("image-classification", model=adapter_repo, trust_remote_code=True)
labels = classifier.model.config.id2label
rows = classifier(images, function_to_apply="none", top_k=len(labels))
out["pipeline"] = torch.tensor([[{d["label"]: d["score"] for d in r}[labels[i]] for i in range(len(labels))] for r in rows])
del sys.modules["hf_tip"]
import hf_tip
model = hf_tip.TipAdapterForImageClassification.from_pretrained(adapter_repo)
with torch.no_grad():
    out["hf_tip"] = model(pixel_values=pixel_values).logits
save_file({k: v.contiguous() for k, v in out.items()}, out_file)
print("INFO " + json.dumps({"module": type(remote).__module__, "tokenizer": type(model.processor.tokenizer).__name__}))
"""


@pytest.mark.hub
def test_adapter_only_repo_and_its_backbone_repo_through_the_local_hub(hub_api, tiny_clip, tmp_path):  # noqa: F811
    backbone_repo, adapter_repo = "hf-tip-tests/tiny-clip-backbone", "hf-tip-tests/tip-adapter-only"
    clip, processor = tiny_clip
    HfApi().create_repo(backbone_repo, exist_ok=True)
    clip.save_pretrained(hub_api.repo_dir(backbone_repo))
    processor.save_pretrained(hub_api.repo_dir(backbone_repo))
    hub_api.git(backbone_repo, "add", "-A")
    hub_api.git(backbone_repo, "commit", "-q", "-m", "tiny CLIP")
    sha = hub_api.git(backbone_repo, "rev-parse", "HEAD")

    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor, alpha=1.5, beta=4.0)
    model.build_cache(make_images(LABELS, seed=1), LABELS, augment_epochs=1, show_progress=False)
    model.config.backbone_name_or_path, model.config.backbone_revision = backbone_repo, sha
    model.push_to_hub(adapter_repo, save_backbone=False)
    assert model.config.save_backbone is True
    pushed = hub_api.repo_dir(adapter_repo)
    assert json.loads((pushed / "config.json").read_text())["save_backbone"] is False
    assert set(load_file(pushed / "model.safetensors")) == {"zero_shot_weights", "cache_keys", "cache_labels"}

    paths = []
    for i, image in enumerate(make_images([0, 1, 2, 2], seed=7)):
        paths.append(tmp_path / f"query-{i}.png")
        image.save(paths[-1])
    (tmp_path / "images.json").write_text(json.dumps([str(p) for p in paths]))
    from PIL import Image

    pixel_values = processor.image_processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")
    with torch.no_grad():
        expected = model(pixel_values=pixel_values["pixel_values"]).logits

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_ENDPOINT=hub_api.url, PYTHONPATH=str(ROOT))
    out_file = tmp_path / "pulled.safetensors"
    done = subprocess.run(
        [sys.executable, "-c", PULL, adapter_repo, str(tmp_path / "images.json"), str(out_file)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    info = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("INFO "))[5:])
    assert info["module"].startswith("transformers_modules.") and info["tokenizer"] == "CLIPTokenizer"
    pulled = load_file(out_file)
    for key in ("remote", "pipeline", "hf_tip"):
        torch.testing.assert_close(pulled[key], expected, rtol=1e-5, atol=1e-5, msg=key)
    # the backbone came from its own repository, pinned at its commit
    cached = list((tmp_path / "hf-home" / "hub").glob("models--hf-tip-tests--tiny-clip-backbone/snapshots/*"))
    assert [p.name for p in cached] == [sha]


def _perturbed(clip):
    """The same architecture with other weights (one projection entry moved)."""
    import copy

    other = copy.deepcopy(clip)
    with torch.no_grad():
        other.visual_projection.weight[0, 0] += 0.5
    return other


PIN = r"""
import json, sys
import torch
from hf_tip import TipAdapterForImageClassification
repo, out = sys.argv[1], sys.argv[2]
model = TipAdapterForImageClassification.from_clip(repo, ["a", "b", "c"], templates=["a photo of a {}."])
model.save_pretrained(out, save_backbone=False)
print("REVISION " + json.dumps(model.config.backbone_revision))
"""

LOAD = r"""
import sys
from hf_tip import TipAdapterForImageClassification
model = TipAdapterForImageClassification.from_pretrained(sys.argv[1])
print("LOADED " + str(float(model.clip.logit_scale)))
"""


@pytest.mark.hub
def test_a_hub_backbone_is_pinned_to_its_resolved_commit(hub_api, tiny_clip, tmp_path):  # noqa: F811
    repo = "hf-tip-tests/tiny-clip-pinned"
    clip, processor = tiny_clip
    HfApi().create_repo(repo, exist_ok=True)
    clip.save_pretrained(hub_api.repo_dir(repo))
    processor.save_pretrained(hub_api.repo_dir(repo))
    hub_api.git(repo, "add", "-A")
    hub_api.git(repo, "commit", "-q", "-m", "tiny CLIP")
    sha = hub_api.git(repo, "rev-parse", "HEAD")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_ENDPOINT=hub_api.url, PYTHONPATH=str(ROOT))

    def child(code, *args):
        done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    rc, out = child(PIN, repo, str(tmp_path / "adapter"))
    assert rc == 0, out[-4000:]
    assert json.loads(out.split("REVISION ", 1)[1].splitlines()[0]) == sha
    assert json.loads((tmp_path / "adapter" / "config.json").read_text())["backbone_revision"] == sha
    # main moves on (same shapes, other weights): the pinned adapter still loads its own commit's backbone
    _perturbed(clip).save_pretrained(hub_api.repo_dir(repo))
    hub_api.git(repo, "add", "-A")
    hub_api.git(repo, "commit", "-q", "-m", "other weights")
    assert hub_api.git(repo, "rev-parse", "HEAD") != sha
    rc, out = child(LOAD, str(tmp_path / "adapter"))
    assert rc == 0 and "LOADED" in out, out[-4000:]
    # the same adapter unpinned (edited to follow main) is refused by its fingerprint, not loaded with wrong logits
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    config["backbone_revision"] = None
    (tmp_path / "adapter" / "config.json").write_text(json.dumps(config))
    rc, out = child(LOAD, str(tmp_path / "adapter"))
    assert rc != 0 and "has other weights than the one it was saved on: fingerprint" in out, out[-4000:]


def test_a_swapped_backbone_an_edited_full_save_and_a_relative_path_are_refused(tiny_clip, tmp_path, monkeypatch):
    clip, processor = tiny_clip
    good = tmp_path / "backbone"
    clip.save_pretrained(good)
    processor.save_pretrained(good)
    monkeypatch.chdir(tmp_path)
    model = _build("backbone")  # a relative local path, as a user types it
    model.save_pretrained(tmp_path / "adapter", save_backbone=False)
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert config["backbone_name_or_path"] == str(good.resolve())  # stored resolvable from anywhere
    assert len(config["backbone_fingerprint"]) == 64
    assert model.config.backbone_name_or_path == "backbone"  # the model itself is unchanged
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")
    images = make_images([0, 1, 2], seed=3)
    torch.testing.assert_close(_logits(loaded, images), _logits(model, images), rtol=0, atol=0)

    # a same-shape backbone swapped in at the stored path
    shutil.rmtree(good)
    _perturbed(clip).save_pretrained(good)
    processor.save_pretrained(good)
    with pytest.raises(ValueError, match=r"has other weights than the one it was saved on: fingerprint .* recorded"):
        TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")

    # a full save edited to `save_backbone: false`
    model.save_pretrained(tmp_path / "full")
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["backbone_fingerprint"] is None
    config["save_backbone"] = False
    (tmp_path / "full" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"records no `backbone_fingerprint`.*a full save edited"):
        TipAdapterForImageClassification.from_pretrained(tmp_path / "full")

    # an older save that names its backbone by a relative path
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    config["backbone_name_or_path"] = "./backbone"
    (tmp_path / "adapter" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"relative path './backbone'.*absolute path or Hub id"):
        TipAdapterForImageClassification.from_pretrained(tmp_path / "adapter")


def test_pushing_an_adapter_only_model_whose_backbone_is_a_local_folder_is_refused(backbone_dir, monkeypatch):
    import hf_tip.hub.push as push

    monkeypatch.setattr(push, "push_model", lambda *a, **k: pytest.fail("pushed"))
    model = _build(backbone_dir)
    with pytest.raises(ValueError, match=r"backbone .* is a folder on this machine, so nobody else could load it"):
        model.push_to_hub("user/adapter", save_backbone=False)
