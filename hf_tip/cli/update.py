"""`hf-tip update MODEL_DIR --train_dir NEW_FOLDERS --output_dir OUT`: add examples and classes to a saved Tip-Adapter
without rebuilding it.

`--train_dir` is an image folder (one sub-folder per class). A sub-folder named like one of the model's classes
(`_` matching a space) adds its images to that class (`add_examples`); any other sub-folder becomes a new class with
its images (`add_classes`). The updated model is saved to `--output_dir`, which must be empty unless
`--overwrite_output_dir` is given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar

from ..data.loading import load_image_dataset
from ..models.names import clean_class_name
from .arguments import ComputeArguments, OutputArguments
from .common import check_output_dir, push, resolve_device
from .evaluate import load_model

HELP = "Add examples and classes from an image folder to a saved Tip-Adapter, without a rebuild."


@dataclass
class UpdateArguments:
    """The new examples and how their views are drawn."""

    _argument_group_name: ClassVar[str] = "update"

    train_dir: str = field(metadata={"help": "An image folder of new examples, one sub-folder per class."})
    seed: int | None = field(
        default=None, metadata={"help": "Augmentation seed (unset: the one the model's cache records, else 1)."}
    )


@dataclass
class UpdateComputeArguments(ComputeArguments):
    """Where and how fast the backbone runs (augmented views, 32 per pass by default)."""

    batch_size: int = field(default=32, metadata={"help": "Views per forward pass."})


ARGUMENTS = (UpdateArguments, UpdateComputeArguments, OutputArguments)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="A saved Tip-Adapter: a folder (or Hub repo id) from `hf-tip build`.")


def match_folders(folders: list[str], classes: list[str]) -> dict[str, str | None]:
    """Each folder name -> the model class it names (as the prompts read names: `_` as a space, any case), or None
    for a new class."""
    by_name = {clean_class_name(name): name for name in classes}
    return {folder: by_name.get(clean_class_name(folder)) for folder in folders}


def run(
    args: UpdateArguments,
    compute: UpdateComputeArguments,
    output: OutputArguments,
    positional: argparse.Namespace,
    *,
    argv: list[str],
) -> int:
    output_dir = check_output_dir(output.output_dir, output.overwrite_output_dir)  # before any work
    device = resolve_device(compute.device)
    model = load_model(positional.model_dir).to(device)
    if not hasattr(model, "add_examples"):  # live updates are the cache heads': Tip-Adapter(-F) and TIP-X
        raise ValueError(
            f"{positional.model_dir!r} is a {model.config.model_type!r} model; `hf-tip update` adds examples and classes "
            "to a cache (tip-adapter, tip-x) and would drop this model's head."
        )
    split = load_image_dataset(train_dir=args.train_dir)["train"]
    folders = list(split.features["label"].names)
    classes = [model.config.id2label[i] for i in range(model.num_classes)]
    matched = match_folders(folders, classes)
    images, labels = list(split["image"]), [folders[i] for i in split["label"]]
    old = [i for i, label in enumerate(labels) if matched[label] is not None]
    new = [i for i, label in enumerate(labels) if matched[label] is None]
    new_classes = [folder for folder in folders if matched[folder] is None]
    options = dict(seed=args.seed, batch_size=compute.batch_size, show_progress=not compute.disable_tqdm)
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
    if output.push_to_hub:
        print(f"Pushed to the Hub: {push(output_dir, output.hub_model_id, output.hub_token)}")
    return 0
