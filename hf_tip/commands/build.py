"""`hf-tip build`: a training-free Tip-Adapter from a dataset, saved as a `save_pretrained` folder.

Samples `--num_shots` images per class from the train split, builds the augmented cache, searches alpha/beta on the
validation split, scores zero-shot CLIP and Tip-Adapter on the test split, then writes the model folder (config,
`model.safetensors`, processor, model card) and `results.json`. Also holds the arguments and helpers that
`hf-tip evaluate` and `hf-tip demo` share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..data import dataset_class_names, declared_mapping
from ..loading import load_image_dataset
from ..procedure import create_adapter, fit_training_free, resolve_class_names
from ..redact import redact_command
from ..templates import PRESETS, get_preset, resolve_templates

DEFAULT_BACKBONE = "openai/clip-vit-base-patch16"
MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# ------------------------------------------------------------------------------------------- shared arguments
def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """`--dataset_name` or image folders, column names and the datasets cache."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset_name", help="A dataset on the Hub (or a local dataset folder), e.g. timm/eurosat-rgb."
    )
    group.add_argument("--dataset_config_name", help="The dataset's configuration name, if it has several.")
    group.add_argument("--train_dir", help="An imagefolder directory (one sub-folder per class) for the train split.")
    group.add_argument("--validation_dir", help="An imagefolder directory for the validation split.")
    group.add_argument("--test_dir", help="An imagefolder directory for the test split.")
    group.add_argument("--image_column", default="image", help="The column holding the images (default: image).")
    group.add_argument("--label_column", default="label", help="The column holding the labels (default: label).")
    group.add_argument("--cache_dir", help="Where `datasets` stores downloaded and prepared data.")
    group.add_argument(
        "--max_eval_samples", type=int, help="Score on at most this many (seeded) validation and test images each."
    )


def load_dataset_from_args(args: argparse.Namespace):
    """`load_image_dataset` with the flags of `add_dataset_arguments`."""
    return load_image_dataset(
        args.dataset_name,
        args.dataset_config_name,
        args.train_dir,
        args.validation_dir,
        args.test_dir,
        image_column=args.image_column,
        label_column=args.label_column,
        cache_dir=args.cache_dir,
    )


def add_adapter_arguments(
    parser: argparse.ArgumentParser, num_shots: int = 16, augment_epochs: int | None = None, presets: bool = True
) -> None:
    """Class names, prompts (and, with `presets`, `--template_set`), shots, augmentation, search grid, feature cache."""
    group = parser.add_argument_group("Tip-Adapter")
    group.add_argument("--class_names", nargs="+", help="Class names in label order, overriding the dataset's.")
    group.add_argument("--templates", nargs="+", help='Prompt templates, each with one {}, e.g. "a photo of a {}.".')
    if presets:
        group.add_argument(
            "--template_set",
            help=f"The paper's settings for a dataset (templates, class renames, initial alpha/beta, search grid, "
            f"augment epochs): one of {', '.join(sorted(PRESETS))}. --templates overrides its templates.",
        )
    group.add_argument("--num_shots", type=int, default=num_shots, help=f"Images per class (default: {num_shots}).")
    group.add_argument(
        "--augment_epochs",
        type=int,
        default=augment_epochs,
        help="Augmented views averaged into each cache key (default: the template set's, else 10)."
        if augment_epochs is None
        else f"Augmented views averaged into each cache key (default: {augment_epochs}).",
    )
    group.add_argument("--seed", type=int, default=1, help="Seeds the few-shot sampling and augmentation (default 1).")
    group.add_argument(
        "--search_scale", type=float, nargs=2, metavar=("BETA_MAX", "ALPHA_MAX"), help="Upper ends of the grid."
    )
    group.add_argument("--search_step", type=int, nargs=2, metavar=("N_BETA", "N_ALPHA"), help="Grid sizes.")
    group.add_argument(
        "--allow_fewer_shots", action="store_true", help="Take all images of classes with fewer than --num_shots."
    )
    group.add_argument("--feature_cache_dir", help="Store validation/test features here and reuse them on reruns.")
    group.add_argument("--batch_size", type=int, default=64, help="Images per forward pass (default: 64).")
    add_device_argument(group)
    group.add_argument("--disable_tqdm", action="store_true", help="No progress bars.")


def add_device_argument(parser) -> None:
    """`--device`: where CLIP runs (default: cuda when available, else cpu)."""
    parser.add_argument("--device", help="Where CLIP runs, e.g. cuda, cuda:1, mps, cpu (default: cuda if available).")


def resolve_device(name: str | None) -> torch.device:
    """The `--device` asked for, else the first CUDA device when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a device torch knows: {error}") from error


def add_output_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """`--output_dir`, `--overwrite_output_dir`, `--push_to_hub`, `--hub_model_id`."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "--output_dir",
        required=default is None,
        default=default,
        help="Folder for the saved model and results.json" + (f" (default: {default})." if default else "."),
    )
    group.add_argument(
        "--overwrite_output_dir", action="store_true", help="Write into an --output_dir that already holds a model."
    )
    group.add_argument("--push_to_hub", action="store_true", help="Push the saved model to the Hugging Face Hub.")
    group.add_argument("--hub_model_id", help="The Hub repo to push to (default: the output folder's name).")


# --------------------------------------------------------------------------------------------- shared helpers
def fail(command: str, error: BaseException) -> int:
    """Print a clean error (no traceback) and return the exit code 1."""
    print(f"hf-tip {command}: error: {error}", file=sys.stderr)
    return 1


def check_output_dir(output_dir: str, overwrite: bool) -> Path:
    """Refuse an `output_dir` that is a file, or a folder that is not empty (it may hold a model or other files that
    saving would replace: config.json, README.md, ...), unless `overwrite`."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output_dir {output_dir!r} is a file, not a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        held = [name for name in MODEL_FILES if (path / name).exists()]
        what = f"already holds a model ({', '.join(held)})" if held else "is not empty"
        raise ValueError(
            f"--output_dir {output_dir!r} {what}; pass --overwrite_output_dir to write into it anyway, or choose "
            "another folder."
        )
    return path


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (`hf-tip ...`), for the model card."""
    argv = getattr(args, "argv", None)
    return redact_command("hf-tip", argv) if argv is not None else f"hf-tip {args.command}"


def write_results(path: Path, results: dict) -> Path:
    """Write `results.json` into the output folder."""
    path.mkdir(parents=True, exist_ok=True)
    target = path / "results.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    return target


def format_results(results: dict) -> str:
    """A small text table: zero-shot CLIP vs Tip-Adapter on validation and test, and the searched alpha/beta."""
    rows = [f"{'split':<12}{'images':>8}{'zero-shot CLIP':>17}{'Tip-Adapter':>14}"]
    for split in ("validation", "test"):
        scores = results.get(split)
        if scores:
            rows.append(
                f"{split:<12}{scores['num_samples']:>8}{100 * scores['zero_shot_accuracy']:>16.2f}%"
                f"{100 * scores['tip_adapter_accuracy']:>13.2f}%"
            )
    rows.append(
        f"alpha={results['alpha']:.4g}, beta={results['beta']:.4g} (searched on validation); "
        f"cache: {results['cache_size']} keys = {results['num_shots']} shots x {results['num_classes']} classes, "
        f"{results['augment_epochs']} augmented views each"
    )
    return "\n".join(rows)


def saved_message(output_dir: Path) -> str:
    """Where the model went and how to use it."""
    return (
        f"Saved to {output_dir} (results.json inside). Use it with:\n"
        f"  pipeline('image-classification', model={str(output_dir)!r}, trust_remote_code=True)"
    )


def push(output_dir: Path, hub_model_id: str | None) -> str:
    """Push the saved folder (weights, remote code, processor, model card) to `hub_model_id` (default: the output
    folder's name, in the logged-in user's namespace); returns the repo id."""
    from ..hub import push_folder

    commit = push_folder(output_dir, hub_model_id or output_dir.resolve().name)
    return commit.repo_url.repo_id


# ------------------------------------------------------------------------------------------------------ build
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_name_or_path",
        default=DEFAULT_BACKBONE,
        help=f"The CLIP backbone: a Hub id or a local folder with a CLIP checkpoint (default: {DEFAULT_BACKBONE}).",
    )
    add_dataset_arguments(parser)
    add_adapter_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args)
    except (ValueError, OSError) as error:
        return fail("build", error)


def _build(args: argparse.Namespace) -> int:
    output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)
    device = resolve_device(args.device)  # a bad --device fails before any work
    preset = get_preset(args.template_set) if args.template_set else None
    dataset = load_dataset_from_args(args)
    labels, prompts = resolve_class_names(dataset, args.label_column, args.class_names, preset)
    config_kwargs = preset.config_kwargs() if preset is not None else {}
    config_kwargs["templates"] = resolve_templates(args.templates, args.template_set)
    model = create_adapter(args.model_name_or_path, labels, prompt_names=prompts, **config_kwargs)
    model.to(device)
    results = fit_training_free(
        model,
        dataset,
        num_shots=args.num_shots,
        seed=args.seed,
        augment_epochs=args.augment_epochs,
        image_column=args.image_column,
        label_column=args.label_column,
        feature_cache_dir=args.feature_cache_dir,
        search_scale=args.search_scale,
        search_step=args.search_step,
        allow_fewer_shots=args.allow_fewer_shots,
        max_eval_samples=args.max_eval_samples,
        batch_size=args.batch_size,
        show_progress=not args.disable_tqdm,
        dataset_name=args.dataset_name,  # None for local folders (the model card names Hub datasets only)
        command=command_line(args),
        class_mapping=declared_mapping(dataset_class_names(dataset.get("train"), args.label_column), labels),
    )
    results = {"backbone": args.model_name_or_path, "template_set": args.template_set, **results}
    if args.dataset_name is None:
        results["data_dirs"] = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    results["templates"] = model.config.templates
    model.save_pretrained(output_dir)
    write_results(output_dir, results)
    print(format_results(results))
    print(saved_message(output_dir))
    if args.push_to_hub:
        print(f"Pushed to the Hub: {push(output_dir, args.hub_model_id)}")
    return 0
