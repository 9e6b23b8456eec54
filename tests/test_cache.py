"""The cache: the formula in `hf_tip.models.cache` against dense one-hot algebra, and `build_cache` against the paper's
procedure (fixed order, raw features averaged over augmented passes, then L2-normalised)."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, make_images

from hf_tip import TipAdapterForImageClassification
from hf_tip.models.cache import affinity, cache_logits, one_hot_values, tip_logits
from hf_tip.models.features import view_generator
from hf_tip.models.images import augment, to_pixel_values


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _raw_image_features(clip, pixel_values: torch.Tensor) -> torch.Tensor:
    """Unnormalised CLIP image features, straight from the backbone (no hf_tip code)."""
    with torch.no_grad():
        out = clip.get_image_features(pixel_values=pixel_values)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@pytest.fixture
def tip(tiny_clip):
    clip, processor = tiny_clip
    return TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)


def test_cache_logits_equal_the_dense_one_hot_formula():
    generator = torch.Generator().manual_seed(3)
    feats, keys = _unit(torch.randn(5, 8, generator=generator)), _unit(torch.randn(11, 8, generator=generator))
    labels = torch.tensor([0, 3, 1, 1, 2, 0, 3, 3, 2, 1, 0])
    weights = _unit(torch.randn(4, 8, generator=generator))
    dense = torch.exp(-2.5 * (1 - feats @ keys.T)) @ torch.eye(4)[labels]  # [5,11] @ [11,4]
    torch.testing.assert_close(cache_logits(affinity(feats, keys), labels, 4, 2.5), dense, rtol=1e-6, atol=1e-6)
    expected = 30.0 * feats @ weights.T + 1.7 * dense
    torch.testing.assert_close(
        tip_logits(feats, weights, keys, labels, 30.0, 1.7, 2.5), expected, rtol=1e-6, atol=1e-6
    )
    assert torch.equal(tip_logits(feats, weights, keys, labels, 30.0, 0.0, 2.5), 30.0 * (feats @ weights.T))
    assert torch.equal(one_hot_values(labels, 4), torch.eye(4)[labels])


def test_a_class_without_keys_gets_no_cache_logit():
    feats, keys = _unit(torch.randn(3, 6)), _unit(torch.randn(4, 6))
    out = cache_logits(affinity(feats, keys), torch.tensor([0, 0, 2, 2]), 3, 1.0)
    assert torch.equal(out[:, 1], torch.zeros(3)) and (out[:, [0, 2]] > 0).all()


def test_build_cache_averages_raw_features_then_normalises(tip, tiny_clip, monkeypatch):
    clip, _ = tiny_clip
    # A random CLIP gives every view nearly the same feature norm, which hides the order of averaging and
    # normalising; scaling each feature by a factor of its input makes the views' norms differ.
    encode = clip.get_image_features

    def scaled_features(pixel_values, **kwargs):
        out = encode(pixel_values=pixel_values, **kwargs)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return feats * torch.exp(6 * pixel_values[:, :, :2, :2].mean(dim=(1, 2, 3)))[:, None]  # depends on the crop

    monkeypatch.setattr(clip, "get_image_features", scaled_features)
    labels = [0, 1, 2, 1]
    images = make_images(labels, seed=5)
    epochs, seed = 3, 13  # a seed whose views differ enough in norm for the teeth below
    tip.build_cache(images, labels, augment_epochs=epochs, seed=seed, batch_size=3, show_progress=False)

    size = clip.config.vision_config.image_size
    mean, std = tip.processor.image_processor.image_mean, tip.processor.image_processor.image_std
    views = [
        [augment(image, size, view_generator(seed, e, i)) for i, image in enumerate(images)] for e in range(epochs)
    ]
    raw = torch.stack([_raw_image_features(clip, to_pixel_values(batch, mean, std)) for batch in views])  # [E,N,D]
    expected = _unit(raw.mean(0))
    torch.testing.assert_close(tip.cache_keys, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(tip.cache_labels, torch.tensor(labels))
    # teeth: averaging normalised views (the wrong order) gives keys measurably different from the right ones
    wrong = _unit(_unit(raw).mean(0))
    norms = raw.norm(dim=-1)
    assert (norms.max(0).values / norms.min(0).values).min() > 1.5
    assert (wrong - expected).abs().max() > 1e-4  # 10x the tolerance the right order meets
    assert tip.config.augment_epochs == epochs and tip.config.cache_size == len(labels)


def test_build_cache_is_deterministic_in_its_seed(tip):
    labels = [0, 1, 2]
    images = make_images(labels, seed=4)
    first = tip.build_cache(images, labels, augment_epochs=2, seed=1, show_progress=False).cache_keys.clone()
    again = tip.build_cache(images, labels, augment_epochs=2, seed=1, batch_size=1, show_progress=False).cache_keys
    torch.testing.assert_close(first, again, rtol=1e-6, atol=1e-6)  # batching does not change the views
    same = tip.build_cache(images, labels, augment_epochs=2, seed=1, show_progress=False).cache_keys
    assert torch.equal(first, same)
    other = tip.build_cache(images, labels, augment_epochs=2, seed=2, show_progress=False).cache_keys
    assert not torch.allclose(first, other, atol=1e-4)


def test_build_cache_from_a_dataset_takes_k_shots_per_class(tip, image_dataset):
    tip.build_cache(image_dataset, num_shots=3, augment_epochs=1, show_progress=False)
    assert torch.equal(torch.bincount(tip.cache_labels, minlength=3), torch.tensor([3, 3, 3]))
    assert tip.cache_keys.shape == (9, tip.config.clip_config.projection_dim)
    assert tip.config.cache_size == 9 and tip.config.num_shots == 3
    torch.testing.assert_close(tip.cache_keys.norm(dim=-1), torch.ones(9))
    first = tip.cache_keys.clone()
    tip.build_cache(image_dataset, num_shots=3, augment_epochs=1, seed=1, show_progress=False)
    assert torch.equal(first, tip.cache_keys)  # same seed, same shots, same views


def test_build_cache_reports_classes_short_of_shots(tip, image_dataset):
    with pytest.raises(ValueError, match="fewer than 9 examples"):
        tip.build_cache(image_dataset, num_shots=9, augment_epochs=1, show_progress=False)


def test_cache_values_are_one_hot(adapter):
    values = adapter.cache_values
    assert values.shape == (adapter.cache_keys.shape[0], len(CLASS_NAMES))
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(values.sum(-1), torch.ones(values.shape[0]))
    assert torch.equal(values.argmax(-1), adapter.cache_labels)


def test_set_cache_normalises_keys_and_copies_them(tip):
    keys = torch.randn(4, tip.config.clip_config.projection_dim) * 5
    tip.set_cache(keys, [0, 1, 2, 0])
    torch.testing.assert_close(tip.cache_keys, _unit(keys))
    keys.zero_()
    assert tip.cache_keys.abs().sum() > 0
    assert tip.cache_labels.dtype == torch.long and tip.config.cache_size == 4


@pytest.mark.parametrize(
    ("keys", "labels", "match"),
    [
        (torch.zeros(0, 16), [], "empty cache"),
        (torch.randn(3, 8), [0, 1, 2], "dimension 8.*projection dim is 16"),
        (torch.tensor([[float("nan")] * 16, [1.0] * 16]), [0, 1], "NaN or inf"),
        (torch.tensor([[float("inf")] * 16, [1.0] * 16]), [0, 1], "NaN or inf"),
        (torch.randn(3, 16), [0, 1], "3 keys but labels of shape \\(2,\\)"),
        (torch.randn(3, 16), [0, 1, 3], "Labels \\[3\\] lie outside \\[0, 3\\)"),
        (torch.randn(2, 16), [-1, 0], "Labels \\[-1\\] lie outside"),
        (torch.randn(2, 16), [0.0, 1.0], "integer class indices"),
    ],
)
def test_set_cache_rejects_bad_entries(tip, keys, labels, match):
    with pytest.raises(ValueError, match=match):
        tip.set_cache(keys, labels)


def test_build_cache_rejects_bad_input(tip, image_dataset):
    with pytest.raises(ValueError, match="empty cache"):
        tip.build_cache([], [], show_progress=False)
    with pytest.raises(ValueError, match="2 images and 1 labels"):
        tip.build_cache(make_images([0, 1]), [0], show_progress=False)
    with pytest.raises(ValueError, match="Labels \\[5\\] lie outside"):
        tip.build_cache(make_images([0, 1]), [0, 5], show_progress=False)
    with pytest.raises(ValueError, match="`augment_epochs`"):
        tip.build_cache(make_images([0]), [0], augment_epochs=0, show_progress=False)
    with pytest.raises(ValueError, match="\\['img'\\] not found"):
        tip.build_cache(image_dataset, image_column="img", show_progress=False)
    four_classes = image_dataset.cast_column(
        "label", image_dataset.features["label"].__class__(names=["a", "b", "c", "d"])
    )
    with pytest.raises(ValueError, match="4 classes.*the model 3"):
        tip.build_cache(four_classes, show_progress=False)


def test_the_few_shot_seed_is_recorded_with_the_sample(adapter, image_dataset):
    adapter.build_cache(image_dataset, num_shots=2, seed=5, augment_epochs=1, show_progress=False)
    assert adapter.config.few_shot_seed == 5 and adapter.config.num_shots == 2
    adapter.set_cache(adapter.cache_keys, adapter.cache_labels)  # keys of unknown provenance
    assert adapter.config.few_shot_seed is None
    images, labels = list(image_dataset["image"][:6]), list(image_dataset["label"][:6])
    adapter.build_cache(images, labels, augment_epochs=1, seed=5, show_progress=False)  # given, not sampled
    assert adapter.config.few_shot_seed is None
