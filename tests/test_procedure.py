"""hf_tip.pipeline.procedure.fit_training_free: validation picks α/β, test is read once at the end, the seed reaches the sample."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, make_images

from hf_tip import TipAdapterForImageClassification
from hf_tip.pipeline import procedure


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
    results = procedure.fit_training_free(model, splits, num_shots=2, augment_epochs=1, show_progress=False).to_dict()

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


def test_the_result_is_typed_and_its_dict_keeps_the_results_json_keys(tiny_clip, splits):
    model = _model(tiny_clip)
    result = procedure.fit_training_free(model, splits, num_shots=2, seed=3, augment_epochs=1, show_progress=False)
    assert isinstance(result, procedure.TrainingFreeResult) and isinstance(result.test, procedure.SplitScores)
    assert (result.method, result.num_shots, result.seed, result.cache_size) == ("tip-adapter", 2, 3, 6)
    assert result.class_names == CLASS_NAMES and result.num_classes == 3 and result.eval_split == "test"
    assert result.hyperparameters == {"alpha": model.config.alpha, "beta": model.config.beta}
    assert result.search_space == {"search_scale": [7.0, 3.0], "search_step": [200, 20]}
    assert result.final is result.test and result.validation.adapter_accuracy_before_search is not None
    data = result.to_dict()
    old_keys = {
        "dataset_name", "num_shots", "seed", "augment_epochs", "cache_size", "num_classes", "alpha", "beta",
        "search_scale", "search_step", "validation", "test", "eval_split", "zero_shot_accuracy",
        "tip_adapter_accuracy",
    }  # fmt: skip
    assert old_keys <= set(data)
    assert data["tip_adapter_accuracy"] == result.test.adapter_accuracy == data["test"]["tip_adapter_accuracy"]
    assert set(data["validation"]) == {
        "zero_shot_accuracy", "tip_adapter_accuracy", "num_samples", "tip_adapter_accuracy_before_search"
    }  # fmt: skip
    assert (model.config.num_shots, model.config.few_shot_seed) == (2, 3)  # provenance recorded from the arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_eval_samples": 0}, r"`max_eval_samples` must be an integer >= 1"),
        ({"search_scale": (float("inf"), 3.0)}, r"`search_scale` must be two finite numbers"),
        ({"search_scale": (7.0, 3.0, 1.0)}, r"`search_scale` must hold exactly two values"),
        ({"search_step": (100_000, 100_000)}, r"`search_step` .* at most 1,000,000"),
    ],
)
def test_bad_arguments_fail_before_the_cache_is_built(tiny_clip, splits, monkeypatch, kwargs, message):
    """These used to fail after the cache was built (naming `max_samples`), write beta = NaN into the config, raise
    an unpack error, or try an 80 GB allocation."""
    model = _model(tiny_clip)
    before = model.config.to_dict()
    monkeypatch.setattr(model, "fit", lambda *a, **k: pytest.fail("built before the arguments were checked"))
    with pytest.raises(ValueError, match=message):
        procedure.fit_training_free(model, splits, num_shots=2, augment_epochs=1, show_progress=False, **kwargs)
    assert model.config.to_dict() == before


def test_an_empty_validation_split_is_named(tiny_clip, splits):
    from datasets import DatasetDict

    empty = DatasetDict(train=splits["train"], validation=splits["validation"].select([]))
    with pytest.raises(ValueError, match=r"The `validation` split is empty"):
        procedure.fit_training_free(_model(tiny_clip), empty, num_shots=2, augment_epochs=1, show_progress=False)


def test_explicit_class_names_must_be_unique(splits):
    with pytest.raises(ValueError, match=r"`class_names` .*once.*\['a'"):
        procedure.resolve_class_names(splits, class_names=["a", "a", "b"])
    with pytest.raises((TypeError, ValueError), match=r"`class_names` must be a list of class names, got .*'abc'"):
        procedure.resolve_class_names(splits, class_names="abc")


@pytest.mark.parametrize("name", ["GDAForImageClassification", "TipXForImageClassification"])
def test_another_method_runs_through_the_same_pipeline(tiny_clip, splits, name):
    """build -> search -> score goes through the model's own `fit` / `search_hyperparameters` / `forward`, so a
    different method class runs unchanged and returns the same result type."""
    import hf_tip

    clip, processor = tiny_clip
    model = getattr(hf_tip, name).from_clip(clip, CLASS_NAMES, processor=processor)
    result = procedure.fit_training_free(model, splits, num_shots=2, augment_epochs=2, show_progress=False)
    method = model.config.model_type
    assert result.method == method and result.eval_split == "test" and result.test.num_samples == 15
    assert result.hyperparameters and all(getattr(model.config, k) == v for k, v in result.hyperparameters.items())
    data = result.to_dict()
    assert data[f"{method.replace('-', '_')}_accuracy"] == result.test.adapter_accuracy
    assert data["test"]["zero_shot_accuracy"] == result.test.zero_shot_accuracy
