"""Bad inputs tried as a hostile user would, against the real entry points (issue 9's review): each is a clear error
naming the file / class / flag / tensor, or handled correctly, and nothing the user had is overwritten."""

from __future__ import annotations

import json

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
    from hf_tip.loading import load_image_dataset

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
    from hf_tip.training_args import FinetuneConfig
    from hf_tip.training_checks import check_output_dir

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
