"""Few-shot sampling, column checks, dataset loading (Hub-style datasets and imagefolder dirs) and the feature cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Image as ImageFeature

from hf_tip.data.datasets import check_columns, dataset_class_names, sample_few_shot
from hf_tip.data.loading import load_image_dataset, require_split
from hf_tip.models.seeding import shuffle_keys
from hf_tip.pipeline import encoding as features_module
from hf_tip.pipeline.encoding import encode_dataset

LABELS = [c for c in range(3) for _ in range(10)] + [0, 2, 1, 0]  # 12 / 11 / 11 examples


def write_imagefolder(root, counts: dict[str, int], seed: int = 0) -> None:
    """PNG files under `root/<class>/`, `counts[class]` per class."""
    for c, (name, n) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i, image in enumerate(make_images([c] * n, seed=seed + c)):
            image.save(folder / f"{i:03d}.png")


# ------------------------------------------------------------------------------------------------------- sampler
def test_exactly_k_per_class_grouped_and_sorted():
    picked = sample_few_shot(LABELS, 4, seed=1)
    assert len(picked) == len(set(picked)) == 12
    got = [LABELS[i] for i in picked]
    assert got == [0] * 4 + [1] * 4 + [2] * 4  # grouped by class, in class order
    for c in range(3):
        block = picked[4 * c : 4 * c + 4]
        assert block == sorted(block)


def test_same_seed_same_indices_other_seed_differs():
    assert sample_few_shot(LABELS, 5, seed=7) == sample_few_shot(list(LABELS), 5, seed=7)
    assert sample_few_shot(LABELS, 5, seed=7) != sample_few_shot(LABELS, 5, seed=8)
    assert sample_few_shot(np.array(LABELS), 5, seed=7) == sample_few_shot(torch.tensor(LABELS).tolist(), 5, seed=7)


def test_pinned_indices_are_stable_across_versions():
    """Golden values: a change here changes every user's few-shot split; it must be deliberate."""
    assert sample_few_shot([0, 1, 2] * 10, 3, seed=1) == [9, 15, 21, 4, 10, 13, 2, 5, 14]
    assert sample_few_shot([0, 1, 2] * 10, 3, seed=2) == [3, 9, 18, 7, 10, 19, 11, 17, 29]


def test_same_indices_in_a_fresh_process():
    code = f"from hf_tip.data.datasets import sample_few_shot;print(sample_few_shot({LABELS!r}, 6, seed=123))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == str(sample_few_shot(LABELS, 6, seed=123))


def test_k_shot_set_is_nested_in_k_plus_one():
    for k in range(1, 11):
        assert set(sample_few_shot(LABELS, k, seed=3)) <= set(sample_few_shot(LABELS, k + 1, seed=3))


def test_choice_of_a_class_does_not_depend_on_other_classes():
    """Appending examples of class 2 leaves the picks of classes 0 and 1 unchanged."""
    base = sample_few_shot(LABELS, 4, seed=5)
    more = sample_few_shot(LABELS + [2] * 20, 4, seed=5)
    assert base[:8] == more[:8]


def test_seeded_shuffle_is_roughly_uniform():
    counts = np.zeros(10)
    for seed in range(2000):
        for i in sample_few_shot([0] * 10, 1, seed=seed):
            counts[i] += 1
    assert counts.min() > 140 and counts.max() < 260  # 200 expected per index
    assert len(set(shuffle_keys(np.arange(10_000), 0).tolist())) == 10_000


def test_short_classes_are_named():
    with pytest.raises(ValueError, match=r"2 class\(es\).*'green circle': 11.*'blue stripes': 11") as info:
        sample_few_shot(LABELS, 12, seed=1, class_names=CLASS_NAMES)
    assert "red_square" not in str(info.value)
    assert "allow_fewer" in str(info.value)


def test_allow_fewer_takes_what_there_is():
    picked = sample_few_shot(LABELS, 12, seed=1, allow_fewer=True)
    assert sorted(LABELS[i] for i in picked) == sorted(LABELS)
    empty_class = sample_few_shot([0, 0, 2, 2], 2, class_names=["a", "b", "c"], allow_fewer=True)
    assert [[0, 0, 2, 2][i] for i in empty_class] == [0, 0, 2, 2]


@pytest.mark.parametrize(
    "labels, shots, kwargs, match",
    [
        ([0, 1], 0, {}, "num_shots"),
        ([0, 1], True, {}, "num_shots"),
        ([0, 3], 1, {"class_names": ["a", "b"]}, r"\[0, 2\)"),
        ([0, -1], 1, {}, r"\[0, 1\)|must lie"),
        (["cat", "dog"], 1, {}, "integer class indices"),
        ([0.0, 1.0], 1, {}, "integer class indices"),
    ],
)
def test_bad_arguments(labels, shots, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_few_shot(labels, shots, **kwargs)


# ------------------------------------------------------------------------------------------------------- columns
def test_missing_column_lists_columns(image_dataset):
    with pytest.raises(ValueError, match=r"\['img'\].*\['image', 'label'\]"):
        check_columns(image_dataset, "img", "label")
    assert dataset_class_names(image_dataset) == CLASS_NAMES
    assert dataset_class_names(image_dataset.cast_column("label", Value("int64"))) is None


def test_build_cache_on_dataset_uses_the_sampler(adapter, image_dataset):
    adapter.build_cache(image_dataset, num_shots=3, seed=4, augment_epochs=1, show_progress=False)
    picked = sample_few_shot(image_dataset["label"], 3, seed=4)
    assert adapter.cache_labels.tolist() == [image_dataset["label"][i] for i in picked]
    renamed = image_dataset.rename_column("image", "img")
    with pytest.raises(ValueError, match=r"'image'.*\['img', 'label'\]"):
        adapter.build_cache(renamed, num_shots=3)
    adapter.build_cache(renamed, num_shots=3, image_column="img", augment_epochs=1, show_progress=False)


# ------------------------------------------------------------------------------------------------------- loading
def test_imagefolder_dirs_become_train_validation_test(tmp_path):
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        write_imagefolder(tmp_path / split, {"cat": n, "dog": n})
    dataset = load_image_dataset(
        train_dir=tmp_path / "train",
        validation_dir=tmp_path / "val",
        test_dir=tmp_path / "test",
        cache_dir=str(tmp_path / "cache"),
    )
    assert list(dataset) == ["train", "validation", "test"]
    assert [len(dataset[s]) for s in dataset] == [6, 4, 2]
    assert dataset_class_names(dataset["train"]) == ["cat", "dog"]
    assert sorted(dataset["validation"]["label"]) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"no `test` split.*\['train'\].*--test_dir"):
        require_split(
            load_image_dataset(train_dir=tmp_path / "train", cache_dir=str(tmp_path / "cache")), "test", "--test_dir"
        )


def test_loading_errors(tmp_path):
    with pytest.raises(ValueError, match="either"):
        load_image_dataset()
    with pytest.raises(ValueError, match="either"):
        load_image_dataset(dataset_name="x", train_dir=tmp_path)
    with pytest.raises(ValueError, match=r"`train_dir` .*nope.* not a directory"):
        load_image_dataset(train_dir=tmp_path / "nope")
    write_imagefolder(tmp_path / "train", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match=r"\['labels'\] not found.*\['image', 'label'\]"):
        load_image_dataset(train_dir=tmp_path / "train", label_column="labels", cache_dir=str(tmp_path / "cache"))


def test_hub_style_dataset_script_folder_with_aliased_split(tmp_path):
    """A saved dataset repo (parquet files, as on the Hub) with a `valid` split and custom column names."""
    features = Features({"img": ImageFeature(), "y": ClassLabel(names=["a", "b"])})
    for split, n in (("train", 4), ("valid", 2)):
        labels = [i % 2 for i in range(n)]
        data = Dataset.from_dict({"img": make_images(labels, seed=n), "y": labels}, features=features)
        (tmp_path / "repo" / "data").mkdir(parents=True, exist_ok=True)
        data.to_parquet(str(tmp_path / "repo" / "data" / f"{split}-00000-of-00001.parquet"))
    dataset = load_image_dataset(
        str(tmp_path / "repo"), image_column="img", label_column="y", cache_dir=str(tmp_path / "c")
    )
    assert list(dataset) == ["train", "validation"]
    assert dataset_class_names(dataset["validation"], "y") == ["a", "b"]
    with pytest.raises(ValueError, match=r"\['image', 'label'\] not found.*\['img', 'y'\]"):
        load_image_dataset(str(tmp_path / "repo"), cache_dir=str(tmp_path / "c"))


# ------------------------------------------------------------------------------------------------- feature cache
def test_feature_cache_is_read_back_without_encoding(tiny_clip, image_dataset, tmp_path, monkeypatch):
    model, processor = tiny_clip
    first = encode_dataset(model, processor.image_processor, image_dataset, cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.glob("features-*.safetensors"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("encoded again despite the feature cache")

    monkeypatch.setattr(features_module, "encode_batches", fail)
    second = encode_dataset(model, processor.image_processor, image_dataset, cache_dir=tmp_path, show_progress=False)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[0].shape == (24, 16) and torch.allclose(first[0].norm(dim=-1), torch.ones(24))
    # another split (another fingerprint) or another transform is encoded, not read from the wrong file
    with pytest.raises(AssertionError, match="encoded again"):
        encode_dataset(model, processor.image_processor, image_dataset.select(range(5)), cache_dir=tmp_path)
    other = type(processor.image_processor).from_dict({**processor.image_processor.to_dict(), "crop_size": 24})
    with pytest.raises(AssertionError, match="encoded again"):
        encode_dataset(model, other, image_dataset, cache_dir=tmp_path)


def test_feature_cache_survives_a_new_process_via_dataset_dict(tiny_clip, tmp_path):
    """Datasets loaded from the same files get the same fingerprint, so a rerun finds the stored features."""
    write_imagefolder(tmp_path / "val", {"a": 2, "b": 2})
    load = lambda: load_image_dataset(validation_dir=tmp_path / "val", cache_dir=str(tmp_path / "c"))  # noqa: E731
    first, second = load(), load()
    assert isinstance(first, DatasetDict)
    assert first["validation"]._fingerprint == second["validation"]._fingerprint
    model, processor = tiny_clip
    a = encode_dataset(
        model, processor.image_processor, first["validation"], cache_dir=tmp_path / "f", show_progress=False
    )
    b = encode_dataset(
        model, processor.image_processor, second["validation"], cache_dir=tmp_path / "f", show_progress=False
    )
    assert torch.equal(a[0], b[0]) and len(list((tmp_path / "f").iterdir())) == 1


def test_backbone_fingerprint_sees_every_vision_weight_and_the_dtype(tiny_clip):
    """Features cached for one backbone are never served to another: a change to any weight of the image tower
    (not only the first ones), or another dtype, gives another key; the text tower does not matter."""
    import copy

    from hf_tip.pipeline.encoding import backbone_fingerprint

    clip, _ = tiny_clip
    base = backbone_fingerprint(clip)
    assert backbone_fingerprint(copy.deepcopy(clip)) == base
    for name in (
        "encoder.layers.1.mlp.fc2.bias",
        "post_layernorm.weight",
    ):
        other = copy.deepcopy(clip)
        with torch.no_grad():
            dict(other.vision_model.named_parameters())[name].add_(1e-3)
        assert backbone_fingerprint(other) != base, name
    other = copy.deepcopy(clip)
    with torch.no_grad():
        other.text_model.final_layer_norm.bias.add_(1.0)
    assert backbone_fingerprint(other) == base
    assert backbone_fingerprint(copy.deepcopy(clip).to(torch.bfloat16)) != base
