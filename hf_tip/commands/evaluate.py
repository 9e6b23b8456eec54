"""`hf-tip evaluate`: accuracy of a saved Tip-Adapter (folder or Hub id) and of its zero-shot CLIP on a dataset split,
printed as JSON."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..data import check_dataset
from ..loading import require_split
from ..modeling_tip_adapter import TipAdapterForImageClassification
from ..procedure import encode_split, score, subsample
from .build import add_dataset_arguments, add_device_argument, fail, load_dataset_from_args, resolve_device

SPLIT_FLAGS = {"train": "--train_dir", "validation": "--validation_dir", "test": "--test_dir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_name_or_path", required=True, help="A saved Tip-Adapter: a local folder or a Hub repo id."
    )
    add_dataset_arguments(parser)
    parser.add_argument("--split", default="test", help="The split to score (default: test).")
    parser.add_argument("--seed", type=int, default=1, help="Seeds the --max_eval_samples subset (default: 1).")
    parser.add_argument("--feature_cache_dir", help="Store the split's features here and reuse them on reruns.")
    parser.add_argument("--batch_size", type=int, default=64, help="Images per forward pass (default: 64).")
    add_device_argument(parser)
    parser.add_argument("--output_file", help="Also write the JSON result to this file (must not exist yet).")
    parser.add_argument("--disable_tqdm", action="store_true", help="No progress bars.")


def run(args: argparse.Namespace) -> int:
    try:
        return _evaluate(args)
    except (ValueError, OSError) as error:
        return fail("evaluate", error)


def load_model(name_or_path: str) -> TipAdapterForImageClassification:
    """`from_pretrained`, with a clear error for a local folder that does not exist or holds no model."""
    path = Path(name_or_path)
    looks_local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        state = "holds no config.json" if path.is_dir() else "does not exist"
        raise ValueError(f"--model_name_or_path {name_or_path!r} {state}: pass a folder saved by `hf-tip build`.")
    return TipAdapterForImageClassification.from_pretrained(name_or_path).eval()


def _evaluate(args: argparse.Namespace) -> int:
    if args.output_file is not None and os.path.exists(args.output_file):
        raise ValueError(f"--output_file {args.output_file!r} already exists; choose another path.")
    device = resolve_device(args.device)  # a bad --device fails before any work
    model = load_model(args.model_name_or_path).to(device)
    dataset = load_dataset_from_args(args)
    require_split(dataset, args.split, SPLIT_FLAGS.get(args.split, "--split"))
    split = subsample(dataset[args.split], args.max_eval_samples, args.seed)
    labels = [model.config.id2label[i] for i in range(model.num_classes)]
    label_map = check_dataset(
        {args.split: split}, labels, image_column=args.image_column, label_column=args.label_column
    )
    embeds, targets = encode_split(
        model,
        split,
        image_column=args.image_column,
        label_column=args.label_column,
        feature_cache_dir=args.feature_cache_dir,
        batch_size=args.batch_size,
        show_progress=not args.disable_tqdm,
        label_map=label_map,
    )
    scores = score(model, embeds, targets)
    result = {
        "model_name_or_path": args.model_name_or_path,
        "dataset_name": args.dataset_name or getattr(args, f"{args.split}_dir", None),
        "split": args.split,
        "num_samples": scores["num_samples"],
        "accuracy": scores["tip_adapter_accuracy"],
        "zero_shot_accuracy": scores["zero_shot_accuracy"],
        "alpha": model.config.alpha,
        "beta": model.config.beta,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output_file is not None:
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(text + "\n")
    return 0
