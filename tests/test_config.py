"""TipAdapterConfig: defaults, validation errors naming the argument, JSON and save/load round trips."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig, CLIPConfig

from hf_tip import TipAdapterConfig


def test_defaults_match_the_paper():
    config = TipAdapterConfig()
    assert config.model_type == "tip-adapter"
    assert tuple(config.search_scale) == (7.0, 3.0)
    assert tuple(config.search_step) == (200, 20)
    assert config.augment_epochs == 10 and config.num_shots == 16
    assert config.finetune_keys is False and config.cache_size == 0
    assert isinstance(config.clip_config, CLIPConfig)
    assert all("{}" in template for template in config.templates)


def test_labels_set_num_labels_and_the_inverse_map():
    config = TipAdapterConfig(id2label={0: "cat", 1: "dog", 2: "fox"})
    assert config.num_labels == 3
    assert config.label2id == {"cat": 0, "dog": 1, "fox": 2}


def test_json_round_trip_is_exact(tiny_clip):
    clip, _ = tiny_clip
    config = TipAdapterConfig(
        clip_config=clip.config.to_dict(),
        alpha=2.5,
        beta=5.25,
        templates=["itap of a {}.", "art of the {}."],
        num_shots=4,
        augment_epochs=3,
        cache_size=12,
        search_scale=(12.0, 10.0),
        search_step=(50, 10),
        finetune_keys=True,
        clip_name_or_path="some/clip",
        id2label={0: "Annual Crop Land", 1: "Forest", 2: "Sea or Lake"},
    )
    text = config.to_json_string()
    restored = TipAdapterConfig.from_dict(json.loads(text))
    assert restored.to_json_string() == text
    assert restored.id2label == {0: "Annual Crop Land", 1: "Forest", 2: "Sea or Lake"}
    assert restored.label2id == {"Annual Crop Land": 0, "Forest": 1, "Sea or Lake": 2}
    assert (restored.alpha, restored.beta, restored.finetune_keys) == (2.5, 5.25, True)
    assert restored.search_step == [50, 10] and restored.search_scale == [12.0, 10.0]
    assert isinstance(restored.clip_config, CLIPConfig)
    assert restored.clip_config.to_dict() == config.clip_config.to_dict()
    assert restored.clip_config.vision_config.to_dict() == clip.config.vision_config.to_dict()
    assert restored.clip_config.projection_dim == clip.config.projection_dim


def test_save_pretrained_and_auto_config(tmp_path, tiny_clip):
    clip, _ = tiny_clip
    config = TipAdapterConfig(clip_config=clip.config.to_dict(), alpha=0.5, id2label={0: "a", 1: "b"})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)  # registered by `import hf_tip`
    assert type(loaded) is TipAdapterConfig
    assert loaded.to_json_string() == config.to_json_string()
    assert loaded.clip_config.vision_config.image_size == clip.config.vision_config.image_size


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"alpha": -1.0}, "`alpha`"),
        ({"alpha": float("nan")}, "`alpha`"),
        ({"alpha": float("inf")}, "`alpha`"),
        ({"alpha": "1"}, "`alpha`"),
        ({"beta": -0.5}, "`beta`"),
        ({"beta": float("nan")}, "`beta`"),
        ({"num_shots": 0}, "`num_shots`"),
        ({"num_shots": 2.5}, "`num_shots`"),
        ({"augment_epochs": 0}, "`augment_epochs`"),
        ({"cache_size": -1}, "`cache_size`"),
        ({"search_scale": (7.0,)}, "`search_scale`"),
        ({"search_scale": (0.1, 3.0)}, "`search_scale`"),
        ({"search_step": (200, 0)}, "`search_step`"),
        ({"search_step": (200.0, 20)}, "`search_step`"),
        ({"templates": []}, "`templates`"),
        ({"templates": ["a photo of a cat."]}, "`templates`"),
        ({"templates": ["a {} next to a {}."]}, "`templates`"),
        ({"templates": ["a {name}."]}, "`templates`"),
        ({"clip_config": 3}, "`clip_config`"),
        ({"id2label": {0: "cat", 1: "dog", 2: "cat"}}, "duplicated in `id2label`: \\['cat'\\]"),
        ({"id2label": {0: "cat", 2: "dog"}}, "`id2label`"),
        ({"id2label": {0: "cat", 1: "dog"}, "label2id": {"cat": 1, "dog": 0}}, "`label2id`"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, named):
    with pytest.raises(ValueError, match=named):
        TipAdapterConfig(**kwargs)


def test_template_without_placeholder_is_reported_through_from_clip(tiny_clip):
    from hf_tip import TipAdapterForImageClassification

    clip, processor = tiny_clip
    with pytest.raises(ValueError, match="`templates`.*'a photo.'"):
        TipAdapterForImageClassification.from_clip(clip, ["a", "b"], templates=["a photo."], processor=processor)
