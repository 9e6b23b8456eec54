"""Bad data where it enters (issue 9 items 1, 2, 6, 11; issue 10 item 1; issue 12 item 4): class names matched by
name, high-bit-depth / palette / alpha images, errors that name the file, class, split or tensor, one seeding
scheme, and a carved validation split. Each case failed (or was silently wrong) before these checks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from PIL import Image

from hf_tip import TipAdapterForImageClassification
from hf_tip.data.datasets import align_labels, check_dataset, declared_mapping, stratified_split
from hf_tip.data.loading import carve_validation, load_image_dataset, require_split
from hf_tip.models.features import _pixel_batches, view_generator
from hf_tip.models.images import to_rgb
from hf_tip.models.names import check_class_names
from hf_tip.models.seeding import seeded_generator, seeded_permutation, shuffle_keys
from hf_tip.pipeline import procedure

REVERSED = CLASS_NAMES[::-1]


def named_dataset(names: list[str], labels: list[int], seed: int = 2):
    """A `datasets.Dataset` whose image of row i shows class `labels[i]` of `CLASS_NAMES`, labelled by `names`."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    features = Features({"image": ImageFeature(), "label": ClassLabel(names=names)})
    images = make_images(labels, seed=seed)
    label_in_names = [names.index(CLASS_NAMES[c]) if CLASS_NAMES[c] in names else c for c in labels]
    return Dataset.from_dict({"image": images, "label": label_in_names}, features=features)


def write_folder(root, classes: dict[str, int], seed: int = 0) -> None:
    for c, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(make_images([c % 3] * n, seed=seed + c)):
            image.save(root / name / f"{i:03d}.png")


def fresh_model(tiny_clip, names=CLASS_NAMES) -> TipAdapterForImageClassification:
    clip, processor = tiny_clip
    return TipAdapterForImageClassification.from_clip(clip, names, processor=processor, alpha=1.5, beta=4.0)


# ------------------------------------------------------------------------------------------ class names vs labels
def test_align_labels_by_name_and_errors_name_both_lists():
    assert align_labels(CLASS_NAMES, CLASS_NAMES) is None
    assert align_labels(REVERSED, CLASS_NAMES) == [2, 1, 0]
    # the prompts' cleaning: `_` as a space, case and whitespace ignored
    assert align_labels(["Blue  Stripes", "green_circle", "RED SQUARE"], CLASS_NAMES) == [2, 1, 0]
    with pytest.raises(ValueError, match=r"only in the dataset: \['purple'\]; only in the model: \['blue stripes'\]"):
        align_labels(["red_square", "green circle", "purple"], CLASS_NAMES)
    with pytest.raises(ValueError, match=r"only in the dataset: \[\]; only in the model: \['blue stripes'\]"):
        align_labels(["red_square", "green circle"], CLASS_NAMES)
    # an explicit mapping: a dict for the renamed classes, or a list in dataset label order
    assert align_labels(["purple", "green circle", "red_square"], CLASS_NAMES, {"purple": "blue stripes"}) == [2, 1, 0]
    assert align_labels(list("rgb"), CLASS_NAMES, CLASS_NAMES) is None
    assert align_labels(list("bgr"), CLASS_NAMES, REVERSED) == [2, 1, 0]
    assert align_labels(["tabby", "siamese"], ["cat", "dog"], {"tabby": "cat", "siamese": "cat"}) == [0, 0]
    with pytest.raises(ValueError, match=r"maps \['horse'\], which are not dataset classes"):
        align_labels(CLASS_NAMES, CLASS_NAMES, {"horse": "red_square"})
    with pytest.raises(ValueError, match=r"give the model's class of each dataset label"):
        align_labels(CLASS_NAMES, CLASS_NAMES, ["red_square"])
    assert declared_mapping(REVERSED, CLASS_NAMES) is None  # the same classes: matched by name
    assert declared_mapping(list("rgb"), CLASS_NAMES) == CLASS_NAMES  # a rename: declared by label index
    assert declared_mapping(None, CLASS_NAMES) is None


def test_check_dataset_splits_columns_and_plain_labels(image_dataset):
    from datasets import Dataset, DatasetDict

    with pytest.raises(ValueError, match=r"no `validation` split.*--validation_dir.*--train_val_split 0\.2"):
        check_dataset(DatasetDict(train=image_dataset), CLASS_NAMES, required_splits=("train", "validation"))
    with pytest.raises(ValueError, match=r"The `validation` split is empty"):
        check_dataset(DatasetDict(train=image_dataset, validation=image_dataset.select([])), CLASS_NAMES)
    with pytest.raises(ValueError, match=r"Column\(s\) \['img'\] not found"):
        check_dataset(image_dataset, CLASS_NAMES, image_column="img")
    other = named_dataset(REVERSED, [0, 1, 2])
    with pytest.raises(ValueError, match=r"`validation` split's classes .* are not the `train` split's"):
        check_dataset(DatasetDict(train=image_dataset, validation=other), CLASS_NAMES)
    assert check_dataset(DatasetDict(train=other, validation=other), CLASS_NAMES) == [2, 1, 0]
    plain = Dataset.from_dict({"image": make_images([0, 1]), "label": [0, 3]})  # no ClassLabel: index order
    with pytest.raises(ValueError, match=r"`dataset` split's labels in column 'label' span 0\.\.3, outside"):
        check_dataset(plain, CLASS_NAMES)
    assert check_dataset(plain.select([0]), CLASS_NAMES) is None
    text = Dataset.from_dict({"image": make_images([0]), "label": ["cat"]})
    with pytest.raises(ValueError, match=r"holds <U3 values .* not class indices"):
        check_dataset(text, CLASS_NAMES)


def test_build_cache_remaps_a_dataset_in_another_order(tiny_clip):
    labels = [c for c in range(3) for _ in range(4)]
    aligned = fresh_model(tiny_clip).build_cache(
        named_dataset(CLASS_NAMES, labels), num_shots=2, augment_epochs=1, show_progress=False
    )
    shuffled = fresh_model(tiny_clip).build_cache(
        named_dataset(REVERSED, labels), num_shots=2, augment_epochs=1, show_progress=False
    )
    assert torch.equal(shuffled.cache_labels, aligned.cache_labels)  # labels come out right...
    torch.testing.assert_close(shuffled.cache_keys, aligned.cache_keys)  # ...for the same images
    with pytest.raises(ValueError, match=r"only in the dataset: \['purple'\]; only in the model: \['red_square'\]"):
        fresh_model(tiny_clip).build_cache(named_dataset(["purple", *CLASS_NAMES[1:]], [1, 2]), num_shots=1)
    renamed = fresh_model(tiny_clip).build_cache(
        named_dataset(["purple", *CLASS_NAMES[1:]], labels),
        num_shots=2,
        augment_epochs=1,
        show_progress=False,
        class_mapping={"purple": "red_square"},
    )
    torch.testing.assert_close(renamed.cache_keys, aligned.cache_keys)


def test_fit_training_free_remaps_every_split(tiny_clip):
    from datasets import DatasetDict

    def splits(names):
        labels = [c for c in range(3) for _ in range(3)]
        return DatasetDict(
            train=named_dataset(names, labels, 1), validation=named_dataset(names, labels, 2),
            test=named_dataset(names, labels, 3),
        )  # fmt: skip

    kwargs = dict(num_shots=2, augment_epochs=1, search_step=(3, 3), show_progress=False)
    aligned = procedure.fit_training_free(fresh_model(tiny_clip), splits(CLASS_NAMES), **kwargs).to_dict()
    shuffled = procedure.fit_training_free(fresh_model(tiny_clip), splits(REVERSED), **kwargs).to_dict()
    for key in ("alpha", "beta", "validation", "test"):
        assert shuffled[key] == aligned[key], key
    renamed = procedure.fit_training_free(
        fresh_model(tiny_clip), splits(list(CLASS_NAMES)), class_mapping=CLASS_NAMES, **kwargs
    ).to_dict()
    assert renamed["test"] == aligned["test"]


def test_evaluate_command_remaps_by_name(tiny_clip, tmp_path, capsys):
    """An imagefolder lists classes alphabetically ("blue stripes", "green circle", "red_square"); the model lists
    them as built. A cache of the test images themselves scores 1.0 only when labels are mapped by name."""
    import json

    from hf_tip.cli import main
    from hf_tip.pipeline.encoding import encode_dataset

    write_folder(tmp_path / "test", {name: 2 for name in CLASS_NAMES})
    split = load_image_dataset(test_dir=tmp_path / "test", cache_dir=str(tmp_path / "cache"))["test"]
    model = fresh_model(tiny_clip)
    embeds, labels = encode_dataset(model.clip, model.processor.image_processor, split, show_progress=False)
    folder_names = split.features["label"].names
    assert folder_names != CLASS_NAMES
    model.set_cache(embeds, [CLASS_NAMES.index(folder_names[y]) for y in labels.tolist()])
    model.config.alpha, model.config.beta = 100.0, 50.0
    model.save_pretrained(tmp_path / "model")
    args = ["evaluate", "--model_name_or_path", str(tmp_path / "model"), "--test_dir", str(tmp_path / "test")]
    assert main([*args, "--disable_tqdm", "--cache_dir", str(tmp_path / "cache")]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0


def test_finetune_check_is_the_same_check(adapter, image_dataset):
    from datasets import DatasetDict

    from hf_tip.training.trainer import FinetuneConfig
    from hf_tip.training.trainer import check_dataset as finetune_check

    shuffled = named_dataset(REVERSED, [0, 1, 2])
    assert finetune_check(adapter, DatasetDict(train=shuffled, validation=shuffled), FinetuneConfig()) == [2, 1, 0]
    renamed = named_dataset(list("rgb"), [0, 1, 2])
    with pytest.raises(ValueError, match=r"only in the dataset: \['r', 'g', 'b'\].*as `class_names` \(`--class_"):
        finetune_check(adapter, DatasetDict(train=renamed, validation=renamed), FinetuneConfig())


# --------------------------------------------------------------------------------------------------- class names
def test_class_names_as_a_string_or_repeated_are_errors(tiny_clip, image_dataset):
    clip, processor = tiny_clip
    with pytest.raises(
        ValueError, match=r"`class_names` must be a list of class names, got the string 'cat'.*\['cat'\]"
    ):
        TipAdapterForImageClassification.from_clip(clip, "cat", processor=processor)
    with pytest.raises(ValueError, match=r"more than once.*\['a'\] \(positions \{'a': \[0, 1\]\}"):
        check_class_names(["a", "a", "b"])
    with pytest.raises(ValueError, match=r"more than once.*\['Red_Square'\]"):
        check_class_names(["Red_Square", "red square"])  # the same prompt
    with pytest.raises(ValueError, match=r"empty name\(s\) at position\(s\) \[1\]"):
        check_class_names(["a", " "])
    with pytest.raises(ValueError, match=r"more than once.*\['a'\]"):  # hf-tip build --class_names a a b
        procedure.resolve_class_names(image_dataset, class_names=["a", "a", "b"])


# ---------------------------------------------------------------------------------------------------- image modes
def gradient16() -> Image.Image:
    """A 16-bit grey PNG round trip: a horizontal ramp over the lower half of the 16-bit range (0..32767)."""
    ramp = np.tile(np.linspace(0, 32767, 64), (8, 1)).astype(np.uint16)
    return Image.fromarray(ramp)


def test_16bit_png_becomes_a_similar_8bit_gradient(tmp_path):
    path = tmp_path / "ramp16.png"
    gradient16().save(path)
    image = Image.open(path)
    assert image.mode.startswith("I")
    rgb = np.asarray(to_rgb(image)).astype(int)
    expected = np.tile(np.linspace(0, 32767, 64), (8, 1)) / 257
    assert rgb.shape == (8, 64, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    assert np.abs(rgb[..., 0] - expected).max() <= 1  # not ~99 % white as convert("RGB") makes it
    assert abs(rgb.mean() - 63.7) < 1
    as_i = Image.fromarray(np.asarray(image).astype(np.int32))  # mode I
    assert np.array_equal(np.asarray(to_rgb(as_i)), np.asarray(to_rgb(image)))
    big_endian = Image.frombytes("I;16B", image.size, np.asarray(image).astype(">u2").tobytes())
    assert np.array_equal(np.asarray(to_rgb(big_endian)), np.asarray(to_rgb(image)))
    floats = Image.fromarray((np.tile(np.linspace(0, 1, 64), (8, 1))).astype(np.float32))  # mode F in [0, 1]
    assert np.asarray(to_rgb(floats))[0, [0, -1], 0].tolist() == [0, 255]


def test_alpha_palette_cmyk_and_1bit(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    out = to_rgb(rgba)
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (10, 20, 30)
    assert to_rgb(Image.new("LA", (2, 2), (0, 0))).getpixel((0, 0)) == (255, 255, 255)  # composited on white
    half = to_rgb(Image.new("RGBA", (1, 1), (0, 0, 0, 128))).getpixel((0, 0))
    assert all(126 <= v <= 128 for v in half)
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((1, 1))
    palette.save(tmp_path / "p.png")
    assert to_rgb(Image.open(tmp_path / "p.png")).getpixel((1, 1)) == (255, 255, 255)
    opaque = Image.new("RGB", (2, 2), (200, 10, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert to_rgb(opaque).getpixel((0, 0)) == (200, 10, 10)
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 255, 255, 0))).getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(TypeError, match=r"Expected a PIL\.Image\.Image, got numpy\.ndarray"):
        to_rgb(np.zeros((2, 2, 3)))


def test_every_image_entry_converts_16bit_correctly(tiny_clip):
    from hf_tip.models.images import augment, to_pixel_values

    _, processor = tiny_clip
    sixteen, eight = gradient16(), to_rgb(gradient16())
    assert torch.equal(  # evaluation (encode_dataset's batches)
        next(_pixel_batches([sixteen], processor.image_processor, 4))["pixel_values"],
        next(_pixel_batches([eight], processor.image_processor, 4))["pixel_values"],
    )
    a = augment(sixteen, 16, view_generator(1, 0, 0))  # cache build and fine-tuning views
    assert np.array_equal(np.asarray(a), np.asarray(augment(eight, 16, view_generator(1, 0, 0))))
    assert torch.equal(to_pixel_values([sixteen]), to_pixel_values([eight]))


# --------------------------------------------------------------------------------------- errors naming the thing
def test_truncated_jpeg_names_the_file(tmp_path, tiny_clip):
    write_folder(tmp_path / "train", {"a": 2, "b": 2})
    bad = tmp_path / "train" / "b" / "broken.jpg"
    make_images([1])[0].save(bad, format="JPEG")
    bad.write_bytes(bad.read_bytes()[:300])
    dataset = load_image_dataset(train_dir=tmp_path / "train", cache_dir=str(tmp_path / "cache"))
    model = fresh_model(tiny_clip, ["a", "b"])
    with pytest.raises(ValueError, match=r"row \d+ of column 'image' \(.*broken\.jpg\).*Remove or replace"):
        model.build_cache(dataset["train"], show_progress=False)
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        procedure.encode_split(model, dataset["train"], show_progress=False)


def test_image_folder_errors_name_the_folder_and_class(tmp_path):
    write_folder(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"`validation_dir` \(`--validation_dir`\) '.*empty' holds no image files"):
        load_image_dataset(train_dir=tmp_path / "train", validation_dir=tmp_path / "empty")
    write_folder(tmp_path / "val", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match=r"`--validation_dir` '.*val' .*missing in the validation split: \['c'\]"):
        load_image_dataset(train_dir=tmp_path / "train", validation_dir=tmp_path / "val")


def test_non_pil_items_and_one_channel_pixels(adapter):
    images = make_images([0, 1])
    with pytest.raises(TypeError, match=r"`images\[1\]` is a numpy\.ndarray, not a PIL\.Image\.Image"):
        copy.deepcopy(adapter).build_cache([images[0], np.asarray(images[1])], [0, 1], show_progress=False)
    with pytest.raises(TypeError, match=r"`images\[0\]` is a builtins\.str"):
        copy.deepcopy(adapter).build_cache(["cat.png"], [0], show_progress=False)
    with pytest.raises(ValueError, match=r"`pixel_values` must have shape \[B, 3, H, W\].*got \(2, 1, 30, 30\)"):
        adapter(pixel_values=torch.zeros(2, 1, 30, 30))
    with pytest.raises(ValueError, match=r"`pixel_values` must have shape \[B, 3, H, W\].*got \(3, 30, 30\)"):
        adapter(pixel_values=torch.zeros(3, 30, 30))


# ------------------------------------------------------------------------------------------------ one seeding scheme
def test_one_seeded_scheme_with_independent_streams():
    from hf_tip.training.trainer import epoch_order

    assert seeded_permutation(50, 3, "epoch", 2) == epoch_order(50, 3, 2)
    assert sorted(epoch_order(50, 3, 2)) == list(range(50)) and epoch_order(50, 3, 2) != epoch_order(50, 3, 3)
    # the empty stream is the few-shot sampler's (pinned); other streams differ from it and from each other
    keys = shuffle_keys(np.arange(10), 1)
    assert not np.array_equal(keys, shuffle_keys(np.arange(10), 1, "split"))
    assert not np.array_equal(shuffle_keys(np.arange(10), 1, 0), shuffle_keys(np.arange(10), 1, 1))
    draw = torch.rand(3, generator=view_generator(1, 2, 5))
    assert torch.equal(draw, torch.rand(3, generator=seeded_generator(1, "view", 2, 5)))
    assert not torch.equal(draw, torch.rand(3, generator=view_generator(1, 2, 6)))
    with pytest.raises(TypeError, match="integers and strings"):
        shuffle_keys(np.arange(3), 1, 0.5)


def test_stratified_split_is_seeded_disjoint_and_keeps_train():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    parts = stratified_split(labels, {"validation": 0.2}, seed=0)
    assert parts == stratified_split(labels, {"validation": 0.2}, seed=0)
    assert parts != stratified_split(labels, {"validation": 0.2}, seed=1)
    assert sorted(parts["train"] + parts["validation"]) == list(range(17))
    assert [sum(labels[i] == c for i in parts["validation"]) for c in range(3)] == [2, 1, 1]
    with pytest.raises(ValueError, match=r"Class 'lonely' has 1 example\(s\).*keep 1 in `train`"):
        stratified_split([0, 0, 1], {"validation": 0.2}, class_names=["many", "lonely"])


def test_train_val_split_carves_a_stratified_validation(tmp_path):
    write_folder(tmp_path / "train", {"a": 10, "b": 5})
    cache = str(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"no `validation` split.*--train_val_split 0\.2"):
        require_split(load_image_dataset(train_dir=tmp_path / "train", cache_dir=cache), "validation")
    dataset = load_image_dataset(train_dir=tmp_path / "train", cache_dir=cache, train_val_split=0.2)
    assert list(dataset) == ["train", "validation"]
    assert sorted(dataset["validation"]["label"]) == [0, 0, 1] and len(dataset["train"]) == 12
    again = load_image_dataset(train_dir=tmp_path / "train", cache_dir=cache, train_val_split=0.2)
    assert again["validation"]["image"][0].tobytes() == dataset["validation"]["image"][0].tobytes()
    write_folder(tmp_path / "val", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match=r"`--train_val_split 0\.2` .* already has one"):
        load_image_dataset(train_dir=tmp_path / "train", validation_dir=tmp_path / "val", train_val_split=0.2)
    with pytest.raises(ValueError, match=r"`--train_val_split` must be a fraction in \(0, 1\)"):
        carve_validation(dataset["train"], 1.5)
    write_folder(tmp_path / "small", {"a": 4, "tiny": 1})
    with pytest.raises(ValueError, match=r"Class 'tiny' has 1 example"):
        load_image_dataset(train_dir=tmp_path / "small", cache_dir=cache, train_val_split=0.2)
