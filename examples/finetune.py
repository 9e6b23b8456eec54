#!/usr/bin/env python
"""Tip-Adapter-F: fine-tune the cache keys of a Tip-Adapter on a few-shot image classification dataset with Accelerate.

    accelerate launch examples/finetune.py \
        --model_name_or_path openai/clip-vit-base-patch16 \
        --dataset_name blanchon/EuroSAT_RGB --num_shots 16 --num_train_epochs 100 \
        --output_dir tip-adapter-f-eurosat

`--model_name_or_path` is a saved Tip-Adapter (folder or repo id) or a CLIP backbone; from a backbone, the
training-free Tip-Adapter is built first. The same command runs on one GPU, on several
(`accelerate launch --multi_gpu --num_processes 4 ...`), and on CPU processes (`--multi_gpu --num_processes 2` on a
machine without a GPU gives a 2-process gloo run). The training is `hf_tip.training.finetune`; this script only
parses arguments, loads the data and the model, and pushes the result.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from transformers import AutoConfig

from hf_tip import TipAdapterConfig, TipAdapterForImageClassification
from hf_tip.data import dataset_class_names
from hf_tip.hub import push_model
from hf_tip.loading import load_image_dataset, require_split
from hf_tip.procedure import create_adapter, resolve_class_names
from hf_tip.redact import redact_command
from hf_tip.templates import get_preset
from hf_tip.training import FinetuneConfig, check_output_dir, finetune

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tip-Adapter-F: fine-tune a Tip-Adapter's cache keys with Accelerate."
    )
    parser.add_argument(
        "--model_name_or_path",
        required=True,
        help="A saved Tip-Adapter (folder or Hub id), or a CLIP backbone to build the training-free adapter from.",
    )
    parser.add_argument("--dataset_name", help="A dataset on the Hub (or a local dataset folder).")
    parser.add_argument("--dataset_config_name", help="The dataset's configuration name.")
    parser.add_argument("--train_dir", help="An imagefolder directory (one sub-folder per class) for training.")
    parser.add_argument("--validation_dir", help="An imagefolder directory for validation (model selection).")
    parser.add_argument("--test_dir", help="An imagefolder directory for the final test (read once, at the end).")
    parser.add_argument("--image_column", default="image", help="The dataset's image column.")
    parser.add_argument("--label_column", default="label", help="The dataset's label column (a ClassLabel).")
    parser.add_argument("--num_shots", type=int, help="Examples per class (default: the model's num_shots, 16).")
    parser.add_argument("--allow_fewer_shots", action="store_true", help="Take all examples of smaller classes.")
    parser.add_argument("--num_train_epochs", type=int, help="Epochs (default: the template set's, else 20).")
    parser.add_argument("--learning_rate", type=float, help="AdamW's peak learning rate (default 1e-3).")
    parser.add_argument(
        "--per_device_train_batch_size",
        type=int,
        default=256,
        help="Batch per process; the global batch is this times the number of processes (the paper: 256 in all).",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="Seeds the few-shot sample, the views and the order (default: the seed the model's cache was sampled "
        "with, so its keys train on their own images; else 1).",
    )
    parser.add_argument(
        "--template_set",
        help="The paper's settings for one of its datasets (eurosat, imagenet, ...): class renames, templates, "
        "initial alpha/beta, grid, epochs.",
    )
    parser.add_argument(
        "--class_names",
        nargs="+",
        help="The model's name for each dataset label, in label order, when they differ from the dataset's names.",
    )
    parser.add_argument(
        "--alpha", type=float, help="alpha > 0 of the training loss (default: the template set's/model's)."
    )
    parser.add_argument("--beta", type=float, help="beta of the training loss (default: the template set's/model's).")
    parser.add_argument(
        "--templates", nargs="+", help="Prompt templates with `{}` when building from a CLIP backbone."
    )
    parser.add_argument("--augment_epochs", type=int, help="Views per cache key when building from a backbone.")
    parser.add_argument(
        "--search_scale", type=float, nargs=2, metavar=("BETA_MAX", "ALPHA_MAX"), help="The alpha/beta grid's ends."
    )
    parser.add_argument("--search_step", type=int, nargs=2, metavar=("N_BETA", "N_ALPHA"), help="The grid's sizes.")
    parser.add_argument(
        "--online_augmentation",
        action="store_true",
        help="Re-encode fresh augmented views at every step (the paper's loop), not a feature bank encoded once.",
    )
    parser.add_argument(
        "--num_augmented_views",
        type=int,
        help="Views per image in the feature bank (drawn after the augment_epochs views of the cache).",
    )
    parser.add_argument("--encode_batch_size", type=int, default=64, help="Images per CLIP forward when encoding.")
    parser.add_argument("--output_dir", required=True, help="Where to save the model, results and checkpoints.")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="Replace a run already in output_dir.")
    parser.add_argument("--checkpointing_steps", help='Save a checkpoint every N steps, or "epoch".')
    parser.add_argument(
        "--resume_from_checkpoint", help='A checkpoint folder, or "latest" (the newest in output_dir/checkpoints).'
    )
    parser.add_argument("--feature_cache_dir", help="A safetensors cache for the validation/test features.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the fine-tuned model to the Hub.")
    parser.add_argument("--hub_model_id", help="The Hub repository (default: the output folder's name).")
    parser.add_argument("--hub_token", help="A Hub token (default: the logged-in one).")
    parser.add_argument("--with_tracking", action="store_true", help="Log per-epoch metrics with Accelerate trackers.")
    parser.add_argument(
        "--report_to", default="all", help='Trackers ("all": those installed; "tensorboard", "wandb", ...).'
    )
    # Test-only: SIGKILL every process right after step N (and its checkpoint), to test resuming after a crash.
    parser.add_argument("--kill_after_steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dataset_name is None and args.train_dir is None:
        parser.error("Pass --dataset_name or --train_dir/--validation_dir.")
    return args


def load_model(args: argparse.Namespace, dataset, preset) -> tuple[TipAdapterForImageClassification, list[str]]:
    """A saved Tip-Adapter as is, or a zero-shot one over a CLIP backbone (its cache is built by `finetune`); and the
    model's name of each dataset label."""
    labels, prompts = resolve_class_names(dataset, args.label_column, args.class_names, preset)
    overrides = {"search_scale": args.search_scale, "search_step": args.search_step, "templates": args.templates}
    overrides = {k: list(v) for k, v in overrides.items() if v}
    if AutoConfig.from_pretrained(args.model_name_or_path).model_type == TipAdapterConfig.model_type:
        model = TipAdapterForImageClassification.from_pretrained(args.model_name_or_path)
        for name in ("search_scale", "search_step"):
            setattr(model.config, name, overrides.get(name, getattr(model.config, name)))
        return model, labels
    kwargs = {**(preset.config_kwargs() if preset is not None else {}), **overrides}
    return create_adapter(args.model_name_or_path, labels, prompt_names=prompts, **kwargs), labels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = get_preset(args.template_set) if args.template_set else None
    config = FinetuneConfig(
        num_shots=args.num_shots,
        num_train_epochs=args.num_train_epochs or (preset.train_epochs if preset else 20),
        learning_rate=args.learning_rate or (preset.learning_rate if preset else 1e-3),
        per_device_train_batch_size=args.per_device_train_batch_size,
        seed=args.seed,
        # the paper trains at the initial alpha/beta: the template set's, else the model's when finetune starts
        alpha=args.alpha if args.alpha is not None else (preset.init_alpha if preset else None),
        beta=args.beta if args.beta is not None else (preset.init_beta if preset else None),
        online_augmentation=args.online_augmentation,
        num_augmented_views=args.num_augmented_views,
        augment_epochs=args.augment_epochs,
        encode_batch_size=args.encode_batch_size,
        image_column=args.image_column,
        label_column=args.label_column,
        allow_fewer_shots=args.allow_fewer_shots,
        output_dir=args.output_dir,
        overwrite_output_dir=args.overwrite_output_dir,
        checkpointing_steps=args.checkpointing_steps,
        resume_from_checkpoint=args.resume_from_checkpoint,
        feature_cache_dir=args.feature_cache_dir,
        dataset_name=args.dataset_name,  # the card names Hub datasets only, not local folders
        command=redact_command("accelerate launch examples/finetune.py", sys.argv[1:] if argv is None else argv),
    )
    check_output_dir(config)  # before loading anything

    # Without CUDA, `cpu=True` turns `accelerate launch --multi_gpu --num_processes N` into N gloo CPU processes.
    tracking = {
        "log_with": args.report_to,
        "project_config": ProjectConfiguration(args.output_dir, os.path.join(args.output_dir, "logs")),
    }
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **(tracking if args.with_tracking else {}))
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.ERROR,
    )
    set_seed(1 if args.seed is None else args.seed)

    with accelerator.main_process_first():
        dataset = load_image_dataset(
            args.dataset_name,
            args.dataset_config_name,
            args.train_dir,
            args.validation_dir,
            args.test_dir,
            image_column=args.image_column,
            label_column=args.label_column,
        )
    require_split(dataset, "train", "--train_dir")
    require_split(dataset, "validation", "--validation_dir")
    model, labels = load_model(args, dataset, preset)
    if labels != dataset_class_names(dataset["train"], args.label_column):
        config.class_names = labels  # renamed (--class_names, --template_set): label i is the model's class i

    if args.with_tracking:
        hparams = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("tip_adapter_f", hparams)

    on_step = None
    if args.kill_after_steps is not None:

        def on_step(completed_steps: int) -> None:
            if completed_steps == args.kill_after_steps:
                os.kill(os.getpid(), signal.SIGKILL)

    results = finetune(model, dataset, config, accelerator, on_step=on_step)
    logger.info(
        f"best epoch {results['best_epoch']}; {results['eval_split']} accuracy: zero-shot "
        f"{results['zero_shot_accuracy']:.4f}, Tip-Adapter {results['tip_adapter_accuracy']:.4f}, "
        f"Tip-Adapter-F {results['tip_adapter_f_accuracy']:.4f}; saved in {args.output_dir}"
    )
    if args.push_to_hub and accelerator.is_main_process:
        repo_id = args.hub_model_id or Path(args.output_dir).absolute().name
        push_model(model, repo_id, token=args.hub_token, commit_message="Tip-Adapter-F: end of training")
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also tears down the process group (gloo can abort at exit otherwise)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
