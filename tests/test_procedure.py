"""hf_tip.procedure.fit_training_free: validation picks α/β, test is read once at the end, the seed reaches the sample."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, make_images

from hf_tip import TipAdapterForImageClassification, procedure


def _dataset(per_class: int, seed: int):
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    labels = [c for c in range(3) for _ in range(per_class)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=CLASS_NAMES)})
    return Dataset.from_dict({"image": make_images(labels, seed=seed), "label": labels}, features=features)


@pytest.fixture
def splits():
    from datasets import DatasetDict

    return DatasetDict(train=_dataset(6, 1), validation=_dataset(4, 2), test=_dataset(5, 3))


def _model(tiny_clip):
    clip, processor = tiny_clip
    return TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)


def test_validation_picks_alpha_beta_and_test_is_encoded_once_last(tiny_clip, splits, monkeypatch):
    model = _model(tiny_clip)
    events = []
    encode = procedure.encode_split

    def spy_encode(model, split, **kwargs):
        events.append(("encode", len(split)))
        return encode(model, split, **kwargs)

    search = model.search_hyperparameters

    def spy_search(image_embeds, labels, *args, **kwargs):
        events.append(("search", image_embeds.shape[0]))
        searched.append(image_embeds.clone())
        return search(image_embeds, labels, *args, **kwargs)

    searched = []
    monkeypatch.setattr(procedure, "encode_split", spy_encode)
    monkeypatch.setattr(model, "search_hyperparameters", spy_search)
    results = procedure.fit_training_free(model, splits, num_shots=2, augment_epochs=1, show_progress=False)

    assert events == [("encode", 12), ("search", 12), ("encode", 15)]  # validation, search on it, then test once
    val_embeds, _ = encode(model, splits["validation"], show_progress=False)
    assert torch.equal(searched[0], val_embeds)
    assert results["eval_split"] == "test" and results["test"]["num_samples"] == 15
    assert (results["alpha"], results["beta"]) == (model.config.alpha, model.config.beta)


def test_the_seed_reaches_the_few_shot_sample(tiny_clip, splits):
    keys = {}
    for seed in (1, 2, 1):
        model = _model(tiny_clip)
        procedure.fit_training_free(model, splits, num_shots=2, seed=seed, augment_epochs=1, show_progress=False)
        keys.setdefault(seed, []).append(model.cache_keys.clone())
    assert torch.equal(keys[1][0], keys[1][1])
    assert not torch.allclose(keys[1][0], keys[2][0])
