"""The paper's templates, class-name clean-ups and per-dataset presets, and how they reach a model."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch
from conftest import CLASS_NAMES

from hf_tip import TipAdapterConfig
from hf_tip.data.templates import (
    DEFAULT_TEMPLATES,
    IMAGENET_CLASSNAMES,
    IMAGENET_TEMPLATES,
    PRESETS,
    get_preset,
    resolve_templates,
    unique_class_names,
)
from hf_tip.models.features import zero_shot_weights
from hf_tip.pipeline.procedure import create_adapter, resolve_class_names

# dataset: (template, init_alpha, search_scale, train epochs), from the paper's table
PAPER = {
    "imagenet": (None, 1.17, (7, 3), 20),
    "caltech101": ("a photo of a {}.", 3, (12, 5), 20),
    "oxford_pets": ("a photo of a {}, a type of pet.", 1.17, (7, 3), 20),
    "stanford_cars": ("a photo of a {}.", 3, (20, 10), 20),
    "oxford_flowers": ("a photo of a {}, a type of flower.", 10, (50, 50), 20),
    "food101": ("a photo of {}, a type of food.", 1.17, (10, 10), 20),
    "fgvc_aircraft": ("a photo of a {}, a type of aircraft.", 5, (30, 30), 20),
    "sun397": ("a photo of a {}.", 1.17, (12, 10), 20),
    "dtd": ("{} texture.", 2, (13, 13), 20),
    "eurosat": ("a centered satellite photo of {}.", 2, (12, 10), 100),
    "ucf101": ("a photo of a person doing {}.", 3, (7, 3), 20),
}


def test_the_eleven_presets_match_the_paper():
    assert set(PRESETS) == set(PAPER)
    for name, (template, alpha, scale, epochs) in PAPER.items():
        preset = get_preset(name)
        if template is not None:
            assert preset.templates == (template,)
        assert (preset.init_alpha, preset.init_beta) == (alpha, 1.0)
        assert preset.search_scale == scale and preset.search_step == (200, 20)
        assert (preset.augment_epochs, preset.train_epochs, preset.learning_rate) == (10, epochs, 1e-3)
        assert set(preset.paper_accuracy) == {"zero_shot", "tip_adapter", "tip_adapter_f"}
        # every preset makes a valid config
        TipAdapterConfig(**preset.config_kwargs())
    averages = [
        sum(p.paper_accuracy[k] for p in PRESETS.values()) / 11 for k in ("zero_shot", "tip_adapter", "tip_adapter_f")
    ]
    assert [round(a, 1) for a in averages] == [58.9, 70.3, 75.8]  # the paper's reported averages


def test_imagenet_ensemble_and_class_names():
    assert get_preset("imagenet").templates == IMAGENET_TEMPLATES
    assert IMAGENET_TEMPLATES == (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    )
    names = IMAGENET_CLASSNAMES
    assert len(names) == 1000
    assert (names[0], names[1], names[21], names[151], names[999]) == (
        "tench",
        "goldfish",
        "kite (bird of prey)",
        "Chihuahua",
        "toilet paper",
    )
    assert [i for i, n in enumerate(names) if names.count(n) > 1] == [657, 744, 836, 837]
    # pins the exact list (CLIP's notebook order and spelling); any edit must be deliberate
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    assert digest == "571ae1c583b4be7da87519494c52bf405a46af05d5815627c7a0dee997068b60"


def test_presets_are_frozen():
    preset = get_preset("eurosat")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.init_alpha = 3.0
    with pytest.raises(TypeError):
        preset.class_name_map["Forest"] = "Woods"


def test_lookup_by_name_and_alias():
    assert get_preset("EuroSAT") is get_preset("eurosat")
    assert get_preset("oxford-pets") is get_preset("pets") is PRESETS["oxford_pets"]
    assert get_preset("flowers102").name == "oxford_flowers"
    with pytest.raises(ValueError, match=r"Unknown template set 'mnist'.*'caltech101'.*'eurosat'"):
        get_preset("mnist")


def test_class_name_clean_ups():
    eurosat = get_preset("eurosat")
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial"]
    folders += ["Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]
    assert eurosat.clean_class_names(folders) == [
        "Annual Crop Land",
        "Forest",
        "Herbaceous Vegetation Land",
        "Highway or Road",
        "Industrial Buildings",
        "Pasture Land",
        "Permanent Crop Land",
        "Residential Buildings",
        "River",
        "Sea or Lake",
    ]
    # other spellings of the same folder names (Hub copies differ) map alike; unknown names pass through
    assert eurosat.clean_class_names(["annual_crop", "Sea Lake", "mystery"]) == [
        "Annual Crop Land",
        "Sea or Lake",
        "mystery",
    ]
    assert get_preset("caltech101").clean_class_names(["Faces", "airplanes", "accordion"]) == [
        "face",
        "airplane",
        "accordion",
    ]
    assert get_preset("dtd").clean_class_names(["banded"]) == ["banded"]
    imagenet = get_preset("imagenet")
    assert imagenet.clean_class_names([f"n{i:08d}" for i in range(1000)]) == list(IMAGENET_CLASSNAMES)
    with pytest.raises(ValueError, match=r"names 1000 classes by label index, but the dataset has 3"):
        imagenet.clean_class_names(CLASS_NAMES)


def test_resolve_templates():
    assert resolve_templates() == list(DEFAULT_TEMPLATES) == ["a photo of a {}."]
    assert resolve_templates(template_set="dtd") == ["{} texture."]
    assert resolve_templates(["my {} photo."], template_set="dtd") == ["my {} photo."]  # user templates win
    with pytest.raises(ValueError, match="Unknown template set"):
        resolve_templates(template_set="nope")


def test_unique_class_names():
    assert unique_class_names(["a", "b"]) == ["a", "b"]
    assert unique_class_names(["a", "b", "a", "a"]) == ["a", "b", "a (2)", "a (3)"]
    labels = unique_class_names(IMAGENET_CLASSNAMES)
    assert len(set(labels)) == 1000
    assert (labels[657], labels[744], labels[836], labels[837]) == (
        "missile",
        "missile (744)",
        "sunglasses",
        "sunglasses (837)",
    )


def test_resolve_class_names_from_dataset_preset_and_override(image_dataset):
    from datasets import DatasetDict, Value

    assert resolve_class_names(image_dataset) == (CLASS_NAMES, CLASS_NAMES)
    names = ["a", "b", "c"]
    assert resolve_class_names(image_dataset, class_names=names) == (names, names)
    with pytest.raises(ValueError, match=r"`class_names` has 2 entries.*3 classes"):
        resolve_class_names(image_dataset, class_names=["a", "b"])
    plain = image_dataset.cast_column("label", Value("int64"))
    with pytest.raises(ValueError, match=r"'label' carries no class names.*--class_names"):
        resolve_class_names(plain)
    assert resolve_class_names(plain, class_names=names) == (names, names)
    other = image_dataset.cast_column("label", type(image_dataset.features["label"])(names=["x", "y", "z"]))
    with pytest.raises(ValueError, match=r"Splits `train` and `test` have different classes"):
        resolve_class_names(DatasetDict(train=image_dataset, test=other))


def test_prompt_names_reach_the_zero_shot_weights(tiny_clip):
    """Two classes that share a prompt name get unique labels, and the prompts still say the shared name."""
    model, processor = tiny_clip
    prompts = ["red_square", "red_square", "blue stripes"]
    labels = unique_class_names(prompts)
    adapter = create_adapter(model, labels, templates=["a photo of a {}."], prompt_names=prompts, processor=processor)
    assert list(adapter.config.id2label.values()) == ["red_square", "red_square (1)", "blue stripes"]
    expected = zero_shot_weights(
        model, processor.tokenizer, ["red square", "red square", "blue stripes"], ["a photo of a {}."]
    )
    assert torch.allclose(adapter.zero_shot_weights, expected, atol=1e-6)
    assert torch.allclose(adapter.zero_shot_weights[0], adapter.zero_shot_weights[1], atol=1e-6)
    preset = get_preset("dtd")
    adapter = create_adapter(model, CLASS_NAMES, processor=processor, **preset.config_kwargs())
    assert adapter.config.templates == ["{} texture."]
    assert (adapter.config.alpha, adapter.config.beta, adapter.config.search_scale) == (2.0, 1.0, [13.0, 13.0])
