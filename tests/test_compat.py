"""Folders saved by hf-tip 0.1 (the first release: `clip_config`, `clip_name_or_path`) still load, with the same
logits. The fixture was written by 0.1's `save_pretrained` on a seeded tiny CLIP (its config, weights and processor files;
the remote-code copies of 0.1's modules and its card are left out: hf_tip's registered classes load it)."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from hf_tip import TipAdapterConfig, TipAdapterForImageClassification

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_folder_saved_by_the_first_release_loads_with_identical_logits():
    model = TipAdapterForImageClassification.from_pretrained(FIXTURES / "tip-adapter-0.1")
    expected = load_file(FIXTURES / "tip-adapter-0.1-expected.safetensors")
    torch.testing.assert_close(model(image_embeds=expected["image_embeds"]).logits, expected["logits"], rtol=0, atol=0)
    assert model.config.class_names == ["cat", "dog", "bird"]
    assert model.config.backbone_config.model_type == "clip"
    assert (model.config.alpha, model.config.beta) == (1.5, 4.0)


def test_the_first_release_config_names_are_read_as_the_new_ones():
    config = TipAdapterConfig.from_pretrained(FIXTURES / "tip-adapter-0.1")
    assert config.clip_config is config.backbone_config
    saved = config.to_dict()
    assert "backbone_config" in saved and "clip_config" not in saved and "clip_name_or_path" not in saved
