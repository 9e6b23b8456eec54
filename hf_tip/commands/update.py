"""`hf-tip update MODEL_DIR --train_dir NEW_FOLDERS --output_dir OUT`: add examples and classes to a saved Tip-Adapter
without rebuilding it.

`--train_dir` is an image folder (one sub-folder per class). A sub-folder named like one of the model's classes
(`_` matching a space) adds its images to that class (`add_examples`); any other sub-folder becomes a new class with
its images (`add_classes`). The updated model is saved to `--output_dir`, which must be empty unless
`--overwrite_output_dir` is given.
"""

from __future__ import annotations

import argparse

from ..loading import load_image_dataset
from .build import check_output_dir, fail, push, resolve_device
from .evaluate import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="A saved Tip-Adapter: a folder (or Hub repo id) from `hf-tip build`.")
    parser.add_argument(
        "--train_dir", required=True, help="An image folder of new examples, one sub-folder per class."
    )
    parser.add_argument("--output_dir", required=True, help="Where the updated model is saved.")
    parser.add_argument(
        "--overwrite_output_dir", action="store_true", help="Write into a non-empty --output_dir (e.g. MODEL_DIR)."
    )
    parser.add_argument(
        "--seed", type=int, help="Augmentation seed (default: the one the model's cache records, else 1)."
    )
    parser.add_argument("--batch_size", type=int, default=32, help="Views per forward pass (default: 32).")
    parser.add_argument("--device", help="Where CLIP runs, e.g. cuda, cpu (default: cuda if available).")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the updated model to the Hugging Face Hub.")
    parser.add_argument("--hub_model_id", help="The Hub repo to push to (default: the output folder's name).")
    parser.add_argument("--disable_tqdm", action="store_true", help="No progress bars.")


def run(args: argparse.Namespace) -> int:
    try:
        return _update(args)
    except (ValueError, OSError) as error:
        return fail("update", error)


def match_folders(folders: list[str], classes: list[str]) -> dict[str, str | None]:
    """Each folder name -> the model class it names (exactly, or with `_` read as a space), or None for a new class."""
    by_name = {name: name for name in classes}
    by_name.update({name.replace(" ", "_"): name for name in classes if name.replace(" ", "_") not in by_name})
    return {folder: by_name.get(folder, by_name.get(folder.replace(" ", "_"))) for folder in folders}


def _update(args: argparse.Namespace) -> int:
    output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)
    device = resolve_device(args.device)
    model = load_model(args.model_dir).to(device)
    split = load_image_dataset(train_dir=args.train_dir)["train"]
    folders = list(split.features["label"].names)
    classes = [model.config.id2label[i] for i in range(model.num_classes)]
    matched = match_folders(folders, classes)
    images, labels = list(split["image"]), [folders[i] for i in split["label"]]
    old = [i for i, label in enumerate(labels) if matched[label] is not None]
    new = [i for i, label in enumerate(labels) if matched[label] is None]
    new_classes = [folder for folder in folders if matched[folder] is None]
    options = dict(seed=args.seed, batch_size=args.batch_size, show_progress=not args.disable_tqdm)
    if old:
        model.add_examples([images[i] for i in old], [matched[labels[i]] for i in old], **options)
    if new_classes:
        model.add_classes(new_classes, [images[i] for i in new], [labels[i] for i in new], **options)
    model.save_pretrained(output_dir)
    for folder in folders:
        count = labels.count(folder)
        where = f"class {matched[folder]!r}" if matched[folder] is not None else "a NEW class"
        print(f"  {folder}/: {count} image(s) -> {where}")
    print(
        f"Updated model: {model.num_classes} classes, {model.config.cache_size} cache entries; saved to {output_dir}"
    )
    if args.push_to_hub:
        print(f"Pushed to the Hub: {push(output_dir, args.hub_model_id)}")
    return 0
