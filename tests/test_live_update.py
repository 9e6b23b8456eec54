"""Live updates (`add_examples`, `add_classes`, `remove_classes`) and the thumbnail store: a live-updated model equals
one built from scratch, and every bad input raises before the model changes."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import CLASS_NAMES, make_images

from hf_tip import TipAdapterForImageClassification

TEMPLATES = ["a photo of a {}.", "art of the {}."]
OLD_LABELS = [0, 1, 2, 0, 1, 2]


def scratch(tiny_clip, names, images, labels, seed=1, **kwargs):
    """A Tip-Adapter built in one go on `images` (the reference a live update must equal)."""
    model, processor = tiny_clip
    tip = TipAdapterForImageClassification.from_clip(
        model, names, templates=TEMPLATES, processor=processor, alpha=1.5, beta=4.0
    )
    tip.build_cache(images, labels, augment_epochs=2, seed=seed, show_progress=False, **kwargs)
    return tip


def assert_same_model(live, reference, probe):
    assert live.config.id2label == reference.config.id2label
    assert live.config.label2id == reference.config.label2id
    assert live.config.num_labels == reference.config.num_labels == live.num_classes
    assert live.config.cache_size == reference.config.cache_size == live.cache_keys.shape[0]
    assert torch.equal(live.cache_labels, reference.cache_labels)
    torch.testing.assert_close(live.cache_keys, reference.cache_keys, atol=1e-6, rtol=0)
    torch.testing.assert_close(live.zero_shot_weights, reference.zero_shot_weights, atol=1e-6, rtol=0)
    # CLIP's text tower is not batch-invariant (a prompt encoded beside others moves by ~1e-7), so new classes' text
    # weights match a rebuild to ~1e-7 and the logits, scaled by exp(logit_scale) (14.3 here), to ~1e-6 of that scale
    scale = float(live.clip.logit_scale.exp())
    torch.testing.assert_close(
        live(image_embeds=probe).logits, reference(image_embeds=probe).logits, atol=1e-6 * scale, rtol=0
    )


@pytest.fixture
def old_images():
    return make_images(OLD_LABELS, seed=1)


@pytest.fixture
def probe():
    return torch.randn(5, 16)


def test_add_examples_equals_rebuild_on_union(tiny_clip, old_images, probe):
    new_images = make_images([2, 0, 1], seed=7)
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS, seed=3)
    before = live(image_embeds=probe).logits
    live.add_examples(new_images[:1], ["blue stripes"], seed=3)  # by name
    live.add_examples(new_images[1:], torch.tensor([0, 1]), seed=3)  # by index, a second call
    reference = scratch(tiny_clip, CLASS_NAMES, old_images + new_images, OLD_LABELS + [2, 0, 1], seed=3)
    assert_same_model(live, reference, probe)
    assert not torch.allclose(before, live(image_embeds=probe).logits)


def test_add_examples_seed_defaults_to_the_recorded_one(tiny_clip, image_dataset, probe):
    model, processor = tiny_clip
    live = TipAdapterForImageClassification.from_clip(model, CLASS_NAMES, processor=processor, augment_epochs=2)
    live.build_cache(image_dataset, num_shots=2, seed=5, show_progress=False)
    assert live.config.few_shot_seed == 5
    sampled = list(live.cache_labels.tolist())
    reference = copy.deepcopy(live)
    extra = make_images([1], seed=9)
    live.add_examples(extra, [1])
    reference.build_cache(
        [*image_dataset.select(_sampled_rows(image_dataset, 2, 5))["image"], *extra],
        sampled + [1],
        seed=5,
        show_progress=False,
    )
    torch.testing.assert_close(live.cache_keys, reference.cache_keys, atol=1e-6, rtol=0)


def _sampled_rows(dataset, shots, seed):
    from hf_tip.data.datasets import sample_few_shot

    return sample_few_shot(list(dataset["label"]), shots, seed, CLASS_NAMES)


def test_add_classes_equals_rebuild_on_union(tiny_clip, old_images, probe):
    new_images = make_images([0, 1, 0], seed=5)
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS)
    live.add_classes(["yellow_dots", "grey"], new_images, ["yellow_dots", "grey", 0])
    names = CLASS_NAMES + ["yellow_dots", "grey"]
    reference = scratch(tiny_clip, names, old_images + new_images, OLD_LABELS + [3, 4, 0])
    assert_same_model(live, reference, probe)
    assert live(image_embeds=probe).logits.shape == (5, 5)


def test_add_class_without_images_then_with_labels_omitted(tiny_clip, old_images, probe):
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS)
    live.add_classes(["text only"])
    assert live.config.id2label[3] == "text only" and live.config.cache_size == 6
    assert live(image_embeds=probe).logits.shape == (5, 4)
    new_images = make_images([1, 1], seed=4)
    live.add_classes(["purple"], new_images)  # one class: labels may be left out
    reference = scratch(tiny_clip, CLASS_NAMES + ["text only", "purple"], old_images + new_images, OLD_LABELS + [4, 4])
    assert_same_model(live, reference, probe)


def test_remove_classes_undoes_add_classes(tiny_clip, old_images, probe):
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS)
    reference = copy.deepcopy(live)
    live.add_classes(["extra"], make_images([0, 2], seed=8))
    live.remove_classes(["extra"])
    assert_same_model(live, reference, probe)


def test_remove_classes_reindexes(tiny_clip, old_images, probe):
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS)
    full_keys, full_logits = live.cache_keys.clone(), live(image_embeds=probe).logits
    live.remove_classes(["red_square"])
    assert live.config.id2label == {0: "green circle", 1: "blue stripes"}
    assert live.config.label2id == {"green circle": 0, "blue stripes": 1}
    assert live.config.num_labels == 2 and live.config.cache_size == 4
    assert live.cache_labels.tolist() == [0, 1, 0, 1]
    assert torch.equal(live.cache_keys, full_keys[[1, 2, 4, 5]])
    # the kept classes score exactly as before (their text weights and cache entries are untouched)
    torch.testing.assert_close(live(image_embeds=probe).logits, full_logits[:, 1:], atol=1e-6, rtol=0)


def test_live_updates_keep_tip_f_keys_trainable(tiny_clip, old_images):
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS).enable_key_finetuning()
    live.add_classes(["new"], make_images([0], seed=3))
    assert isinstance(live.cache_keys, torch.nn.Parameter) and live.cache_keys.requires_grad
    assert [n for n, p in live.named_parameters() if p.requires_grad] == ["cache_keys"]
    live.remove_classes(["new"])
    assert isinstance(live.cache_keys, torch.nn.Parameter) and live.cache_keys.shape[0] == 6


def _state(model):
    return (
        copy.deepcopy(model.config.to_dict()),
        model.zero_shot_weights.clone(),
        model.cache_keys.detach().clone(),
        model.cache_labels.clone(),
        None if model.thumbnails is None else model.thumbnails.clone(),
    )


def _assert_unchanged(model, state):
    config, weights, keys, labels, thumbnails = state
    assert model.config.to_dict() == config
    assert torch.equal(model.zero_shot_weights, weights)
    assert torch.equal(model.cache_keys, keys) and torch.equal(model.cache_labels, labels)
    assert (model.thumbnails is None) == (thumbnails is None)


BAD_UPDATES = [
    ("add_examples", ([], []), "empty"),
    ("add_examples", (["not an image"], [0]), "images[0]"),
    ("add_examples", ([42], [0]), "images[0]` is a int"),
    ("add_examples", (None, [0]), "NoneType"),
    ("add_examples", ("IMG", [0]), "single"),
    ("add_examples", ("IMG2", ["no such class", 0]), "'no such class'"),
    ("add_examples", ("IMG2", [0, 3]), "labels[1]` = 3"),
    ("add_examples", ("IMG2", [0, -1]), "labels[1]` = -1"),
    ("add_examples", ("IMG2", [0]), "2 images and 1 labels"),
    ("add_examples", ("IMG2", [0, 1.5]), "labels[1]"),
    ("add_classes", (["green circle"],), "'green circle' is already a class"),
    ("add_classes", (["x", "x"],), "'x' appears twice"),
    ("add_classes", ([""],), "names[0]` is empty"),
    ("add_classes", (["  "],), "names[0]` is empty"),
    ("add_classes", ([],), "at least one class"),
    ("add_classes", ("solo",), "single string"),
    ("add_classes", (["a", "b"], "IMG2"), "Pass `labels`"),
    ("add_classes", (["a"], "IMG2", ["a", "zzz"]), "'zzz'"),
    ("add_classes", (["a"], "IMG2", [0, 4]), "labels[1]` = 4"),
    ("add_classes", (["a"], [object()]), "images[0]"),
    ("add_classes", (["a"], None, [0]), "without `images`"),
    ("remove_classes", (["nope"],), "'nope'"),
    ("remove_classes", (CLASS_NAMES,), "no class"),
    ("remove_classes", (["blue stripes", "blue stripes"],), "twice"),
    ("remove_classes", ([],), "at least one class"),
]


@pytest.mark.parametrize("method,args,message", BAD_UPDATES)
def test_bad_updates_raise_and_leave_the_model_unchanged(adapter, tmp_path, method, args, message):
    adapter.enable_thumbnails(size=16, images=make_images(OLD_LABELS, seed=1))
    images = make_images([0, 1], seed=3)
    args = tuple(
        {"IMG": images[0], "IMG2": images}.get(a, a) if isinstance(a, str) and a.startswith("IMG") else a for a in args
    )
    if args and args[0] == ["not an image"]:
        (tmp_path / "notes.txt").write_text("hello")
        args = ([str(tmp_path / "notes.txt")], *args[1:])
        message = "notes.txt"
    state = _state(adapter)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        getattr(adapter, method)(*args)
    _assert_unchanged(adapter, state)


def test_image_paths_are_accepted(adapter, tmp_path):
    image = make_images([2], seed=4)[0]
    image.save(tmp_path / "x.png")
    adapter.add_examples([tmp_path / "x.png"], ["blue stripes"])
    assert adapter.config.cache_size == 7 and adapter.cache_labels[-1] == 2


# ------------------------------------------------------------------------------------------------ thumbnail store
def test_thumbnails_are_off_by_default_and_not_saved(adapter, tmp_path):
    assert adapter.thumbnails is None
    adapter.save_pretrained(tmp_path)
    assert not (tmp_path / "thumbnails.safetensors").exists()
    assert TipAdapterForImageClassification.from_pretrained(tmp_path).thumbnails is None


def test_thumbnails_follow_the_cache_and_round_trip(tiny_clip, old_images, tmp_path):
    live = scratch(tiny_clip, CLASS_NAMES, old_images, OLD_LABELS, store_thumbnails=True)
    assert live.thumbnails.shape == (6, 64, 64, 3) and live.thumbnails.dtype == torch.uint8
    first = live.thumbnails.clone()
    live.add_classes(["new"], make_images([0, 1], seed=3))
    assert live.thumbnails.shape[0] == 8 and torch.equal(live.thumbnails[:6], first)
    live.remove_classes(["red_square"])
    assert live.thumbnails.shape[0] == live.config.cache_size == 6
    assert torch.equal(live.thumbnails[:4], first[[1, 2, 4, 5]])
    live.save_pretrained(tmp_path)
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path)
    assert torch.equal(loaded.thumbnails, live.thumbnails)
    loaded.disable_thumbnails().save_pretrained(tmp_path)  # saving without a store removes the stale file
    assert not (tmp_path / "thumbnails.safetensors").exists()


def test_enable_thumbnails_checks_its_inputs(adapter):
    with pytest.raises(ValueError, match="6 entries but 0 images"):
        adapter.enable_thumbnails()
    with pytest.raises(ValueError, match=r"\[8, 96\]"):
        adapter.enable_thumbnails(size=128, images=make_images(OLD_LABELS))
    assert adapter.thumbnails is None
    adapter.enable_thumbnails(size=32, images=make_images(OLD_LABELS))
    assert adapter.thumbnails.shape == (6, 32, 32, 3)


def test_thumbnail_store_is_capped(adapter, monkeypatch):
    import hf_tip.models.thumbnails as store

    monkeypatch.setattr(store, "MAX_THUMBNAIL_BYTES", 6 * 16 * 16 * 3)
    adapter.enable_thumbnails(size=16, images=make_images(OLD_LABELS))
    state = _state(adapter)
    with pytest.raises(ValueError, match="over the store's cap"):
        adapter.add_examples(make_images([0]), [0])
    _assert_unchanged(adapter, state)
