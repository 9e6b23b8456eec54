"""Bad inputs tried as a hostile user would, against the real entry points (issue 9's review): each is a clear error
naming the file / class / flag / tensor, or handled correctly, and nothing the user had is overwritten."""

from __future__ import annotations

import json

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


def _model(tiny_clip):
    clip, processor = tiny_clip
    return TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)


def test_a_dataset_without_test_split_builds_and_saves(tiny_clip, tmp_path):
    """Without a test split the card reports validation's accuracy; it used to carry the internal
    `tip_adapter_accuracy_before_search` key, which the card refused only when saving, after all the work."""
    from datasets import DatasetDict

    model = _model(tiny_clip)
    splits = DatasetDict(train=_dataset(3, 1), validation=_dataset(2, 2))
    result = procedure.fit_training_free(model, splits, num_shots=2, augment_epochs=1, show_progress=False)
    assert result.eval_split == "validation"
    model.save_pretrained(tmp_path / "saved")
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "tip_adapter_accuracy" in card and "before_search" not in card
    assert json.dumps(result.to_dict())  # results.json keeps the before-search figure
    assert "tip_adapter_accuracy_before_search" in result.to_dict()["validation"]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m, v, y: m.fit(torch.full_like(v, float("nan")), y), "view_features"),
        (lambda m, v, y: m.fit(v, torch.tensor([0, 1, 5, 0, 1, 2])), "labels"),
        (lambda m, v, y: m.fit(v, y[:4]), "labels"),
        (lambda m, v, y: m.fit(v[0], y), "view_features"),
        (lambda m, v, y: m.search_hyperparameters(v[0, :0], y[:0]), "image_embeds"),
        (lambda m, v, y: m.search_hyperparameters(v[0], torch.tensor([0, 1, 7, 0, 1, 2])), "labels"),
        (lambda m, v, y: m.search_hyperparameters(v[0], y[:3]), "labels"),
    ],
)
def test_clip_adapter_checks_what_it_is_given_like_every_method(tiny_clip, call, name):
    """CLIP-Adapter's `fit` took NaN views and labels out of range in silence, and its search scored an empty
    validation set as accuracy 0 and out-of-range labels as misses (every other method raises, naming the tensor)."""
    from hf_tip import ClipAdapterForImageClassification

    clip, processor = tiny_clip
    model = ClipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    views = torch.randn(2, 6, model.feature_dim)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=f"`{name}`"):
        call(model, views, labels)
    model.fit(views, labels)  # a good set is accepted
    assert 0 <= model.search_hyperparameters(views[0], labels)["accuracy"] <= 1


def _image_folder(root, classes: dict[str, int], seed: int = 5):
    for name, label in classes.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(make_images([label, label], seed=seed)):
            image.save(root / name / f"{i}.png")
    return root


def test_update_with_one_class_folder_adds_that_class(adapter, tmp_path, capsys):
    """One sub-folder (the usual way to add one class) lost its labels in `imagefolder` (which drops them for a
    single folder) and failed with `Column(s) ['label'] not found`."""
    from hf_tip.cli import main

    adapter.save_pretrained(tmp_path / "model")
    new = _image_folder(tmp_path / "new", {"purple": 0})
    argv = [str(tmp_path / "model"), "--train_dir", str(new), "--output_dir", str(tmp_path / "out"), "--disable_tqdm"]
    assert main(["update", *argv]) == 0, capsys.readouterr().err
    updated = TipAdapterForImageClassification.from_pretrained(tmp_path / "out")
    assert updated.config.id2label[3] == "purple" and updated.config.cache_size == adapter.config.cache_size + 2


def test_images_outside_class_folders_are_named_not_taken_as_a_class(tmp_path):
    """Images directly in an image folder are refused, naming the folder (with labels kept for one sub-folder, they
    would otherwise become a class named after the folder itself)."""
    from hf_tip.data.loading import load_image_dataset

    root = _image_folder(tmp_path / "train", {"red": 0, "green": 1})
    make_images([2], seed=1)[0].save(root / "stray.png")
    with pytest.raises(ValueError, match=r"`train_dir` \(`--train_dir`\) '.*train' holds 1 image file\(s\) directly"):
        load_image_dataset(train_dir=root)


def test_update_names_a_file_that_is_not_an_image(adapter, tmp_path, capsys):
    from hf_tip.cli import main

    adapter.save_pretrained(tmp_path / "model")
    new = _image_folder(tmp_path / "new", {"purple": 0, "green circle": 1})
    (new / "purple" / "notes.png").write_text("not an image")
    argv = [str(tmp_path / "model"), "--train_dir", str(new), "--output_dir", str(tmp_path / "out"), "--disable_tqdm"]
    assert main(["update", *argv]) == 1
    assert "notes.png" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_finetune_output_dir_that_cannot_be_written_fails_before_any_work(tmp_path, where):
    """Fine-tuning had its own writability check (`os.access`, which says yes to root everywhere, and to a path
    under a file): it passed, and the run failed only when saving. It now makes the one check the commands make."""
    from hf_tip.training.args import FinetuneConfig
    from hf_tip.training.trainer import check_output_dir

    if where == "under_a_file":
        (tmp_path / "a_file").write_text("mine")
        output_dir = tmp_path / "a_file" / "run"
    else:
        output_dir = "/proc/hf-tip-run"
    with pytest.raises(ValueError, match=r"`--output_dir`.*(is a file|not writable)"):
        check_output_dir(FinetuneConfig(output_dir=str(output_dir)))
    if where == "under_a_file":
        assert (tmp_path / "a_file").read_text() == "mine"


def test_zero_shot_search_refuses_an_empty_or_mislabelled_validation_set(tiny_clip):
    from hf_tip import ZeroShotForImageClassification

    clip, processor = tiny_clip
    model = ZeroShotForImageClassification.from_clip(clip, ["cat", "dog"], processor=processor)
    dim = model.feature_dim
    with pytest.raises(ValueError, match="image_embeds"):
        model.search_hyperparameters(torch.zeros(0, dim), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Labels \[5\] lie outside"):
        model.search_hyperparameters(torch.randn(2, dim), torch.tensor([0, 5]))
    assert 0.0 <= model.search_hyperparameters(torch.randn(3, dim), torch.tensor([0, 1, 1]))["accuracy"] <= 1.0


# ------------------------------------------------------------------------ the final review's findings, each pinned
def test_tip_x_built_with_build_cache_has_its_rescaling_ranges(tiny_clip):
    """TIP-X measured ψ's ranges only in `fit`: after `build_cache` (or a live update) they were zeros and γ had no
    effect, so the model silently behaved as a Tip-Adapter."""
    from hf_tip import TipXForImageClassification

    clip, processor = tiny_clip
    model = TipXForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    model.build_cache(
        make_images([0, 1, 2, 0, 1, 2], seed=3), [0, 1, 2, 0, 1, 2], augment_epochs=1, show_progress=False
    )
    assert model.signature_ranges.abs().sum() > 0
    embeds = torch.nn.functional.normalize(torch.randn(4, model.feature_dim), dim=-1)
    model.config.gamma = 0.0
    plain = model(image_embeds=embeds).logits
    model.config.gamma = 5.0
    assert not torch.equal(model(image_embeds=embeds).logits, plain)
    model.add_examples(make_images([1], seed=9), [1], seed=1)  # refreshed with the cache: as if set from scratch
    fresh = TipXForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    fresh.set_cache(model.cache_keys, model.cache_labels)
    torch.testing.assert_close(model.signature_ranges, fresh.signature_ranges, rtol=0, atol=1e-6)
    before = model.signature_ranges.clone()
    model.set_cache(torch.randn(5, model.feature_dim), torch.tensor([0, 1, 2, 0, 1]))
    assert not torch.equal(model.signature_ranges, before)


def test_a_live_update_forgets_the_k_shot_provenance(tiny_clip):
    """After one more example the cache is no longer the seeded K-shot sample: config says so (None), so fine-tuning
    does not trust a stale seed."""
    model = _model(tiny_clip)
    model.build_cache(_dataset(3, 1), num_shots=2, augment_epochs=1, show_progress=False)
    assert (model.config.num_shots, model.config.few_shot_seed) == (2, 1)
    model.add_examples(make_images([0], seed=5), [0])
    assert (model.config.num_shots, model.config.few_shot_seed) == (None, None)
    type(model.config).from_dict(model.config.to_dict())  # still a valid config


@pytest.mark.parametrize(("name", "clash"), [("Red Square", "red_square"), ("GREEN_circle", "green circle")])
def test_add_classes_refuses_a_name_that_reads_like_an_existing_class(tiny_clip, name, clash):
    model = _model(tiny_clip)
    model.set_cache(torch.randn(3, model.feature_dim), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=f"already a class of this model \\(as '{clash}'"):
        model.add_classes([name])
    with pytest.raises(ValueError, match="'Otter' appears twice .*as 'otter'"):
        model.add_classes(["otter", "Otter"])
    assert model.num_classes == 3


def test_update_matches_class_folders_as_the_prompts_read_them():
    from hf_tip.cli.update import match_folders

    assert match_folders(["Red_Square", "otter"], CLASS_NAMES) == {"Red_Square": "red_square", "otter": None}


def test_a_positional_rename_that_swaps_the_datasets_own_names_is_refused():
    from hf_tip.data.datasets import declared_mapping

    with pytest.raises(ValueError, match="'cat' -> 'dog'"):
        declared_mapping(["cat", "dog", "bird"], ["dog", "cat", "parrot"])
    assert declared_mapping(["cat", "dog", "bird"], ["cat", "dog", "parrot"]) == ["cat", "dog", "parrot"]


def test_thumbnails_convert_16_bit_images_by_value_range():
    import numpy as np
    from PIL import Image

    from hf_tip.models.thumbnails import make_thumbnails

    grey = Image.fromarray(np.full((20, 20), 32768, dtype=np.uint16))  # mid-grey in 16 bits
    value = int(make_thumbnails([grey], 8).float().mean())
    assert 120 <= value <= 135, value  # not white


def test_push_withdraws_an_earlier_thumbnail_store():
    from hf_tip.hub.push import STALE_WEIGHTS

    assert "thumbnails.safetensors" in STALE_WEIGHTS


def test_evaluate_loads_a_saved_model_as_its_own_type(tiny_clip, tmp_path):
    """`hf-tip evaluate` / `update` loaded every folder as a Tip-Adapter: a TIP-X was scored without its γ term, and
    `update` would have saved it back as a Tip-Adapter."""
    from hf_tip import GDAForImageClassification, TipXForImageClassification
    from hf_tip.cli.evaluate import load_model

    clip, processor = tiny_clip
    tipx = TipXForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    tipx.set_cache(torch.randn(3, tipx.feature_dim), torch.tensor([0, 1, 2]))
    tipx.save_pretrained(tmp_path / "tipx")
    assert type(load_model(str(tmp_path / "tipx"))) is TipXForImageClassification
    gda = GDAForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    gda.fit(torch.randn(2, 6, gda.feature_dim), torch.tensor([0, 1, 2, 0, 1, 2]))
    gda.save_pretrained(tmp_path / "gda")
    assert type(load_model(str(tmp_path / "gda"))) is GDAForImageClassification
    assert not hasattr(load_model(str(tmp_path / "gda")), "add_examples")


def test_update_refuses_a_model_without_a_cache_instead_of_dropping_its_head(tiny_clip, tmp_path, capsys):
    from hf_tip import GDAForImageClassification
    from hf_tip.cli import main

    clip, processor = tiny_clip
    gda = GDAForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    gda.fit(torch.randn(2, 6, gda.feature_dim), torch.tensor([0, 1, 2, 0, 1, 2]))
    gda.save_pretrained(tmp_path / "gda")
    (tmp_path / "new" / "otter").mkdir(parents=True)
    make_images([0], seed=1)[0].save(tmp_path / "new" / "otter" / "a.png")
    code = main(
        ["update", str(tmp_path / "gda"), "--train_dir", str(tmp_path / "new"), "--output_dir", str(tmp_path / "out")]
    )
    assert code == 1 and "'gda' model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
